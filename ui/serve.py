"""Serving the app from the command line: `python app.py` and `moodpo app` parse the same flags here.

Every flag has a MOODPO_* environment variable as its default; flags are spelled with
underscores, as in the rest of the `moodpo` command line.
"""

from __future__ import annotations

import argparse
import hmac
import os
from collections.abc import Sequence
from pathlib import Path

from moodpo.errors import MoodpoError
from ui.layout import build_demo, launch
from ui.settings import ADMIN_PASSWORD_ENV, SHIPPED_POLICY, AppConfig


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog=prog, description="Steer, compare, evaluate and train MO-ODPO policies in the "
                                                      "browser.")
    p.add_argument("--host", default=env("MOODPO_HOST"), help="address to listen on (default 127.0.0.1, or "
                   "GRADIO_SERVER_NAME as on Spaces; 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=int(env("MOODPO_PORT", "7860")))
    p.add_argument("--runs", default=env("MOODPO_RUNS", "runs"), help="runs folder: policies, evals, new runs")
    p.add_argument("--data", default=env("MOODPO_DATA", "data"), help="folder for data the app collects")
    p.add_argument("--model", default=env("MOODPO_MODEL", "smollm2-135m"), help="base model (name, folder or .gguf)")
    p.add_argument("--policy", default=env("MOODPO_POLICY"), help="initial policy: base or a path under --runs "
                   f"(default: the shipped {SHIPPED_POLICY} where it exists, else base)")
    p.add_argument("--password", default=env("MOODPO_PASSWORD"), help="ask for this password (any user name)")
    p.add_argument("--admin_password", default=env(ADMIN_PASSWORD_ENV),
                   help="admin password for studies, unblinded results, exports and (with --public) training; "
                        "without it those are off. Prefer the environment variable: flags show in `ps`")
    p.add_argument("--public", action="store_true", default=bool(env("SPACE_ID")),
                   help="Space mode (the default on a Hugging Face Space, where SPACE_ID is set): training needs "
                        "the admin password, and the model and scorers load in the background at start")
    p.add_argument("--preload", action=argparse.BooleanOptionalAction, default=None,
                   help="load the initial policy and its scorers in the background at start (default: with --public)")
    p.add_argument("--vote_study", default=env("MOODPO_VOTE_STUDY"),
                   help="the study (id or name) the Vote tab opens on; default: the first open one")
    p.add_argument("--max_runs", type=int, default=int(env("MOODPO_MAX_RUNS", "1")), help="training runs at once")
    return p


def parse_args(argv: Sequence[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    return build_parser(prog).parse_args(argv)


def initial_policy(runs: str, policy: str | None) -> str:
    """The policy the app opens on: the one asked for, else the shipped one where it exists, else base."""
    return policy or (SHIPPED_POLICY if (Path(runs) / SHIPPED_POLICY).is_dir() else "base")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> None:
    args = parse_args(argv, prog)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = AppConfig(runs_dir=args.runs, data_dir=args.data, model=args.model,
                       policy=initial_policy(args.runs, args.policy),
                       max_runs=args.max_runs, admin_password=args.admin_password, vote_study=args.vote_study,
                       public=args.public)
    try:
        demo = build_demo(config)
    except MoodpoError as e:
        raise SystemExit(f"{prog or 'app.py'}: error: {e}") from None
    if args.preload if args.preload is not None else args.public:
        # After building: loading beside it (both mostly Python) would only delay the page.
        demo.store.preload(config.policy)

    def check_password(_user: str, password: str) -> bool:
        return hmac.compare_digest(password.encode(), args.password.encode())

    launch(demo, server_name=args.host, server_port=args.port, auth=check_password if args.password else None,
           auth_message="Enter the app password (any user name)." if args.password else None)
