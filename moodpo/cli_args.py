"""Config fields as command-line options, shared by `moodpo train`, the commands that train or
take a config (`train-soups`, `sweep`) and `make-study` (StudyConfig's fields)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

# What argparse adds to the namespace beside the config fields.
NOT_FIELDS = ("command", "config", "func")


def add_config_fields(parser: argparse.ArgumentParser, schema: type | None = None, *,
                      title: str = "config fields (override the YAML file)", skip: Sequence[str] = ()) -> None:
    """One `--field` option per field of a config dataclass (default TrainConfig), with the field's
    help; values are coerced later, by the config's loader. `skip`: fields that are YAML only.

    TrainConfig's names from before the rename to TRL's are hidden options, so that using one gets
    the config's one-line error naming the new name rather than argparse's "unrecognized arguments".
    """
    import dataclasses

    from moodpo.config import RENAMED, TrainConfig, field_kind

    group = parser.add_argument_group(title)
    for f in dataclasses.fields(schema or TrainConfig):
        if f.name in skip:
            continue
        scalar, is_list, _ = field_kind(f.name, schema)
        kwargs = dict(default=argparse.SUPPRESS, help=f.metadata.get("help", ""), metavar=f.name.upper())
        if is_list:
            kwargs["nargs"] = "+"
        elif scalar is bool:
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        group.add_argument(f"--{f.name}", **kwargs)
    if schema in (None, TrainConfig):
        for old in RENAMED:
            group.add_argument(f"--{old}", default=argparse.SUPPRESS, nargs="*", help=argparse.SUPPRESS)


def overrides(args: argparse.Namespace, skip: Sequence[str] = ()) -> dict:
    """The config fields given on the command line, less `skip` (a command's own options)."""
    return {k: v for k, v in vars(args).items() if k not in (*NOT_FIELDS, *skip)}
