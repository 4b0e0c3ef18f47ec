"""Command line: `python -m moodpo <command> ...` (also the `moodpo` console script).

User errors print one line and exit with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from moodpo.cli_args import add_config_fields, overrides
from moodpo.errors import MoodpoError

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (argparse's own prints the whole usage first)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def cmd_train(args: argparse.Namespace) -> int:
    from moodpo.commands import train_baseline
    from moodpo.config import load_config
    from moodpo.eval.evaluate import append_training_eval
    from moodpo.train.trainer import train

    config = load_config(args.config, overrides(args))
    if config.method != "moodpo":
        return train_baseline(config)
    result = train(config, evaluate=append_training_eval)
    last = result.metrics[-1] if result.metrics else {}
    summary = ", ".join(f"{k}={last[k]:.3f}" for k in ("loss", "rewards/accuracies", "pairs_per_second") if k in last)
    print(f"{result.status} at step {result.step}: {result.run_dir} {summary}")
    return 130 if result.status == "interrupted" else 0


def cmd_config_docs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from moodpo.config_docs import render

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(render())
    print(f"configuration reference -> {args.out}")
    return 0


def cmd_app(args: argparse.Namespace, app_args: Sequence[str]) -> int:
    from ui.serve import main as serve

    serve(app_args, prog="moodpo app")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="moodpo", description="Steerable multi-objective alignment with MO-ODPO.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a steerable policy with MO-ODPO",
                       description="Train with MO-ODPO, or the baseline the config's method names. Values "
                                   "come from --config, then --field overrides.")
    p.add_argument("--config", help="YAML file with config fields (see configs/)")
    add_config_fields(p)
    p.set_defaults(func=cmd_train)

    # The app's flags are defined once, in ui.serve (shared with app.py); they are parsed there.
    p = sub.add_parser("app", add_help=False, help="serve the app in the browser: the flags of app.py (moodpo app --help)")
    p.set_defaults(func=cmd_app)

    from moodpo.config_docs import DOCS_FILE
    p = sub.add_parser("config-docs", help=f"write the configuration reference ({DOCS_FILE})",
                       description="Write the configuration reference, generated from the config dataclasses' "
                                   "help text.")
    p.add_argument("--out", default=DOCS_FILE, help=f"file to write (default {DOCS_FILE})")
    p.set_defaults(func=cmd_config_docs)

    from moodpo import commands
    commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C (or the app's stop, which sends SIGINT before the first step) must reach the
        # trainer as KeyboardInterrupt even when this process was started with SIGINT ignored,
        # as shells do for background jobs.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("transformers", "accelerate", "peft", "httpx", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        import transformers
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:
        pass
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "app":
        return cmd_app(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args) or 0
    except MoodpoError as e:
        print(f"moodpo: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("moodpo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
