"""docs/configuration.md, written from the config dataclasses' help text: `python -m moodpo config-docs`.

The reference is generated, never edited by hand; a test checks that the committed file is what
`render()` gives today.
"""

from __future__ import annotations

import dataclasses
import inspect
import re

import yaml

DOCS_FILE = "docs/configuration.md"


def _value(value) -> str:
    """A default as it would be written in YAML, on one line."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _sections(cls) -> dict[str, str]:
    """field name -> the `# comment` heading it sits under in the class body ('' when none)."""
    out, section = {}, ""
    for line in inspect.getsource(cls).splitlines():
        if heading := re.fullmatch(r"\s+# (.+)", line):
            section = heading.group(1)
        elif field := re.match(r"\s+(\w+): ", line):
            out[field.group(1)] = section
    return out


def _table(cls) -> list[str]:
    lines, sections, current = [], _sections(cls), None
    for f in dataclasses.fields(cls):
        section = sections.get(f.name, "")
        if section != current:
            current = section
            if section:
                lines += ["", f"### {section[0].upper()}{section[1:]}"]
            lines += ["", "| field | type | default | what it does |", "|---|---|---|---|"]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        help_text = f.metadata.get("help", "").replace("|", "\\|").replace("<", "&lt;")
        kind = str(f.type).replace("|", "or")
        lines.append(f"| `{f.name}` | {kind} | `{_value(default)}` | {help_text} |")
    return lines


def render() -> str:
    from moodpo.config import RENAMED, TrainConfig
    from moodpo.human.study import StudyConfig

    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from the config dataclasses' help text by `python -m moodpo config-docs`; do not edit. -->",
        "",
        "## Training: `moodpo train`, `train-soups`, `sweep` (`moodpo/config.py`, `TrainConfig`)",
        "",
        "A YAML file (`--config`, see `configs/`) sets any of these fields; `--field value` on the command",
        "line overrides it (lists as `--objectives a b`). The resolved config is written to",
        "`<output_dir>/config.yaml` before training starts. Where TRL has the same concept the field has",
        "TRL's name.",
        *_table(TrainConfig),
        "",
        "### Names before TRL's",
        "",
        "A config or command line with one of these names stops with a one-line error naming the new one.",
        "A run folder saved before the rename still loads: its `config.yaml` is read with the old names",
        "taken as the new ones.",
        "",
        "| old name | new name |",
        "|---|---|",
        *[f"| `{old}` | `{new}` |" for old, new in RENAMED.items()],
        "",
        "## Human preference studies: `moodpo make-study` (`moodpo/human/study.py`, `StudyConfig`)",
        "",
        "A YAML file (`--config`, see `configs/studies/`) with these fields; every field but `comparisons`",
        "can be overridden as `--field value`.",
        *_table(StudyConfig),
        "",
    ]
    return "\n".join(lines)
