"""User-facing errors: anything the user can fix by changing input raises one of these."""


class MoodpoError(ValueError):
    """A problem with the user's input; the message is one line that says what to fix.

    The CLI prints it without a traceback and exits with code 2; the UI shows it as a warning.
    """
