"""Config fields as command-line options, shared by `moodpo train` and the commands that train
or take a config (`train-soups`, `sweep`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

# What argparse adds to the namespace beside the config fields.
NOT_FIELDS = ("command", "config", "func")


def add_config_fields(parser: argparse.ArgumentParser) -> None:
    """One `--field` option per TrainConfig field, with the field's help; values are coerced later.

    The names from before the rename to TRL's are hidden options, so that using one gets the
    config's one-line error naming the new name rather than argparse's "unrecognized arguments".
    """
    from moodpo.config import FIELDS, RENAMED, field_kind

    group = parser.add_argument_group("config fields (override the YAML file)")
    for name, f in FIELDS.items():
        scalar, is_list, _ = field_kind(name)
        kwargs = dict(default=argparse.SUPPRESS, help=f.metadata.get("help", ""), metavar=name.upper())
        if is_list:
            kwargs["nargs"] = "+"
        elif scalar is bool:
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        group.add_argument(f"--{name}", **kwargs)
    for old in RENAMED:
        group.add_argument(f"--{old}", default=argparse.SUPPRESS, nargs="*", help=argparse.SUPPRESS)


def overrides(args: argparse.Namespace, skip: Sequence[str] = ()) -> dict:
    """The config fields given on the command line, less `skip` (a command's own options)."""
    return {k: v for k, v in vars(args).items() if k not in (*NOT_FIELDS, *skip)}
