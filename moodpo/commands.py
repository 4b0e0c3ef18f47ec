"""CLI commands beyond `train`: each adds a subparser and a handler."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the non-training commands to the `moodpo` parser."""
