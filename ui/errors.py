"""User errors in the UI: a MoodpoError becomes a gr.Error toast (or API error); the app stays up."""

from __future__ import annotations

import functools
import html
import inspect
from collections.abc import Callable

import gradio as gr

from moodpo.errors import MoodpoError


def _to_gradio(e: MoodpoError) -> gr.Error:
    # Escaped: toasts render HTML, and a message may quote the user's input.
    return gr.Error(html.escape(str(e), quote=False), print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """Wrap a handler (plain or generator) so its MoodpoError reaches the user as a gr.Error."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except MoodpoError as e:
                raise _to_gradio(e) from None
        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MoodpoError as e:
            raise _to_gradio(e) from None
    return call


def warn(messages: list[str]) -> None:
    """Non-fatal problems as gr.Warning toasts."""
    for message in messages:
        gr.Warning(html.escape(message, quote=False))
