"""Serve the MO-ODPO app: `python app.py` or `moodpo app` (flags or MOODPO_* environment variables; see --help)."""

from ui.serve import main

if __name__ == "__main__":
    main()
