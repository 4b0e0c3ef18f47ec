"""The Vote tab's handlers as plain functions: annotate blinded pairs, and the admin's studies and results.

Annotators see the study's instructions, a prompt and two responses labelled A (left) and B
(right), nothing else; which systems and weights produced them is revealed only once their vote
is stored, and never in a study that keeps them hidden. The vote id is fixed when a pair is
shown, so submitting twice records once. An invite link (`?study=NAME`) opens the Vote tab on
its study. Every input is checked by the
VoteStore before anything is written; a bad one raises MoodpoError (VoteError) and nothing is stored.

Admin handlers take the password the user typed and check it on every call (ui/admin.py).
"""

from __future__ import annotations

import html
import math
import re
import shutil
import urllib.parse
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from moodpo.conditioning import display_name
from moodpo.errors import MoodpoError
from moodpo.human.votes import DB_FILE, MAX_NAME_CHARS, OVERALL, Assignment, Study, VoteStore, question_text
from moodpo.human.votestats import TABLE_TITLES
from moodpo.weights import split_values
from ui.admin import check_admin
from ui.figures import empty_figure
from ui.generation import check_weights
from ui.policies import PolicyStore, resolve_under
from ui.settings import AppConfig

# How the four stored choices read on the annotator's buttons (left is A, right is B).
CHOICE_LABELS = {"left": "A better", "right": "B better", "tie": "Tie", "both_bad": "Both bad"}
STUDIES_FOLDER = "studies"
MAX_LIVE_PAIRS = 200
# Bootstrap draws of the in-app report (the CLI's votes-report takes more); small, so it answers in seconds.
REPORT_BOOTSTRAP = 500
REPORT_BT_BOOTSTRAP = 100
REPORT_LABELS = {**TABLE_TITLES, "comments": "Comments"}


class LazyVotes:
    """The app's VoteStore, opened on first need: `get()` returns None while no database exists,
    so an app that never votes writes nothing to the data folder; `get(create=True)` makes one."""

    def __init__(self, data_dir: Path, store: VoteStore | None = None):
        self.path = Path(data_dir) / DB_FILE
        self._store = store
        self._lock = threading.Lock()

    def get(self, create: bool = False) -> VoteStore | None:
        with self._lock:
            if self._store is None and (create or self.path.exists()):
                self._store = VoteStore(self.path.parent)
            return self._store


def need(votes: VoteStore | None) -> VoteStore:
    """The store, or MoodpoError while there is no database (so no study, vote or annotator) yet."""
    if votes is None:
        raise MoodpoError("there is no study yet; ask the organiser to create one")
    return votes


def open_studies(votes: VoteStore | None) -> list[dict]:
    """Open studies an annotator may join: id, name, n_pairs and question keys."""
    if votes is None:
        return []
    return [{"id": s.id, "name": s.name, "n_pairs": s.n_pairs, "questions": list(s.questions)}
            for s in votes.studies(include_closed=False)]


def study_choices(studies: Sequence[dict]) -> list[tuple[str, str]]:
    return [(f"{s['name']} · {s['n_pairs']} pairs", str(s["id"])) for s in studies]


def register(votes: VoteStore, name: str | None) -> str:
    """A new annotator token for this name (names need not be unique: the token is the identity)."""
    if name is None or (isinstance(name, str) and not name.strip()):
        raise MoodpoError("type your name (or a nickname) first")
    return votes.register_annotator(name)


def annotator(votes: VoteStore | None, token: str | None) -> str | None:
    """The name behind a token, or None if there is none or the store does not know it (e.g. a new data folder)."""
    if votes is None or not token or not isinstance(token, str):
        return None
    try:
        return votes.annotator_name(token)
    except MoodpoError:
        return None


def blinded(item: Assignment) -> dict:
    """What an annotator may see before voting: the study's instructions, the prompt, both
    responses, the questions, progress."""
    return {"vote_id": item.vote_id, "study": item.study_id, "instructions": item.instructions,
            "prompt": item.prompt, "a": item.left, "b": item.right,
            "questions": [{"key": q, "text": question_text(q)} for q in item.questions],
            "done": item.done, "total": item.total}


def invited_study(votes: VoteStore | None, ref) -> tuple[str | None, str]:
    """The open study an invite link's `?study=` names (by name or id): (study id, "") or, when
    there is none to open, (None, why)."""
    if not isinstance(ref, str) or not ref.strip():
        return None, ""
    shown = html.escape(ref.strip()[:MAX_NAME_CHARS])
    try:
        study = need(votes).find_study(ref.strip())
    except MoodpoError:
        return None, f"The invite link names a study, **{shown}**, that does not exist here."
    if study.status != "open":
        return None, f"Study **{shown}** is closed; it takes no more votes."
    return study.id, ""


def invite_link(page_url: str | None, study_name: str) -> str:
    """The app's address with `?study=<name>` (other query parameters and the #fragment dropped);
    just `?study=<name>` when the address is unknown."""
    query = urllib.parse.urlencode({"study": study_name})
    if not page_url:
        return f"?{query}"
    parts = urllib.parse.urlsplit(page_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def next_item(votes: VoteStore | None, study_id, token: str | None) -> dict | None:
    """The annotator's current pair in this study (the same one again after a reload), or None when done."""
    votes = need(votes)
    if not token:
        raise MoodpoError("identify yourself first (your name)")
    if study_id is None or study_id == "":
        raise MoodpoError("choose a study")
    item = votes.next_pair(study_id, token)
    return None if item is None else blinded(item)


def answers_from(questions: Sequence[str], values: Sequence[str | None]) -> dict[str, str]:
    """{question: choice} from the annotator's radios (one per question, in order); every one answered."""
    missing = [q for q, v in zip(questions, values) if not v]
    if missing:
        raise MoodpoError("answer every question (" + "; ".join(question_text(q) for q in missing)
                          + ") or skip this pair")
    return dict(zip(questions, values))


def submit(votes: VoteStore, vote_id, answers: Mapping, comment: str | None = "") -> dict:
    """Store a vote once, then reveal who wrote A and B: {recorded, vote_id, a: {system, weights}, b};
    a study that keeps the systems hidden returns {recorded, vote_id} only.

    recorded is False when this vote id was already stored (a double click): nothing changes.
    The store checks everything (vote id, study open, every question, choices, comment length)
    before it writes.
    """
    recorded = votes.record_vote(vote_id, answers, "" if comment is None else comment)
    if not votes.study_of_vote(vote_id).reveal_systems:
        return {"recorded": recorded, "vote_id": vote_id}
    return {"recorded": recorded, "vote_id": vote_id, **reveal(votes, vote_id)}


def skip(votes: VoteStore, vote_id) -> dict:
    votes.skip(vote_id)
    return {"skipped": True, "vote_id": vote_id}


def reveal(votes: VoteStore, vote_id) -> dict:
    """Which system and weights wrote A (left) and B (right); the store refuses before the vote.

    The reward models' scores stay out: an annotator who sees which side the proxy preferred
    would learn to vote like it, and the study measures exactly that agreement.
    """
    sides = votes.reveal(vote_id)
    return {"a": {k: sides["left"][k] for k in ("system", "weights")},
            "b": {k: sides["right"][k] for k in ("system", "weights")}}


def _weights(weights) -> str:
    if isinstance(weights, Mapping):
        return " · ".join(f"{display_name(o)} {float(w):.2f}" for o, w in weights.items())
    if weights is None:
        return "–"
    return ", ".join(f"{float(w):.2f}" for w in weights)


def reveal_markdown(revealed: dict, recorded: bool, objectives: Sequence[str] = ()) -> str:
    """The post-vote reveal, escaped: system names come from study configs and may hold anything."""
    head = "Thanks, your vote is saved." if recorded else "This vote was already saved; it counts once."
    if "a" not in revealed:
        return f"**{head}** This study keeps the systems behind A and B hidden."
    lines = [f"**{head}** The responses came from:"]
    for side in ("a", "b"):
        info = revealed.get(side) or {}
        weights = info.get("weights")
        if objectives and weights is not None and len(weights) == len(objectives):
            weights = dict(zip(objectives, weights))
        lines.append(f"- **{side.upper()}**: {html.escape(str(info.get('system', '?')))} · "
                     f"weights {html.escape(_weights(weights))}")
    return "\n".join(lines)


def progress_text(done: int, total: int) -> str:
    return f"Progress: **{int(done)} / {int(total)}** pairs judged"


def all_studies(votes: VoteStore | None) -> list[Study]:
    return [] if votes is None else list(votes.studies(include_closed=True))


def admin_studies(votes: VoteStore | None, config: AppConfig, password: str) -> list[Study]:
    """Every study, closed ones too, for the admin."""
    check_admin(config, password)
    return all_studies(votes)


def admin_study_choices(studies: Sequence[Study]) -> list[tuple[str, str]]:
    return [(f"{s.name} · {s.status} · {s.n_pairs} pairs", str(s.id)) for s in studies]


def studies_table(studies: Sequence[Study], page_url: str | None = None) -> pd.DataFrame:
    """One row per study, with the invite link that opens the Vote tab on it."""
    columns = ["id", "name", "status", "pairs", "overlap", "reveals systems", "invite link", "questions", "created"]
    return pd.DataFrame([{"id": s.id, "name": s.name, "status": s.status, "pairs": s.n_pairs, "overlap": s.overlap,
                          "reveals systems": "yes" if s.reveal_systems else "no",
                          "invite link": invite_link(page_url, s.name), "questions": ", ".join(s.questions),
                          "created": s.created} for s in studies], columns=columns)


def progress_tables(votes: VoteStore | None, config: AppConfig, password: str, study_id) -> tuple[str, pd.DataFrame,
                                                                                                   pd.DataFrame]:
    """Where a study stands, for the admin: (a one-line summary, progress per annotator, coverage per pair)."""
    check_admin(config, password)
    if study_id is None or study_id == "":
        raise MoodpoError("choose a study")
    votes = need(votes)
    study = votes.study(study_id)
    annotators, coverage = votes.annotator_progress(study.id), votes.pair_coverage(study.id)
    covered = int(coverage["covered"].sum())
    summary = (f"**{html.escape(study.name)}**: {covered} / {len(coverage)} pairs have their {study.overlap} "
               f"vote{'s' if study.overlap > 1 else ''}; {int(coverage['voted'].sum())} votes, "
               f"{int(coverage['skipped'].sum())} skips, {int(coverage['open'].sum())} shown and not answered yet; "
               f"from {len(annotators)} annotator{'s' if len(annotators) != 1 else ''}.")
    return summary, annotators, coverage


def study_configs(config: AppConfig) -> list[str]:
    """YAML files under <configs>/studies/, as names relative to that folder."""
    folder = config.configs_dir / STUDIES_FOLDER
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.y*ml") if p.is_file())


def run_in_thread(fn: Callable, on_wait: Callable[[float], None] | None = None, every: float = 1.0):
    """fn() in a thread, calling on_wait(seconds elapsed) while it runs; returns its result or re-raises."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e

    thread = threading.Thread(target=target, name="moodpo-study", daemon=True)
    start = time.monotonic()
    thread.start()
    while thread.is_alive():
        thread.join(every)
        if thread.is_alive() and on_wait:
            on_wait(time.monotonic() - start)
    if "error" in result:
        raise result["error"]
    return result["value"]


def set_open(votes: VoteStore | None, config: AppConfig, password: str, study_id, is_open: bool) -> Study:
    check_admin(config, password)
    if study_id is None or study_id == "":
        raise MoodpoError("choose a study")
    votes = need(votes)
    (votes.reopen_study if is_open else votes.close_study)(study_id)
    return votes.study(study_id)


def study_config_path(config: AppConfig, name: str | None) -> Path:
    """A study config chosen in the app: a YAML file under <configs>/studies/, nowhere else."""
    if not name or not str(name).endswith((".yaml", ".yml")):
        raise MoodpoError(f"choose a study config (a YAML file in {config.configs_dir / STUDIES_FOLDER}/)")
    path = resolve_under(config.configs_dir / STUDIES_FOLDER, str(name), what="study config")
    if not path.is_file():
        raise MoodpoError(f"study config {name!r} is not a file")
    return path


def create_from_config(votes: VoteStore, config: AppConfig, password: str, config_file: str,
                       name: str | None = None, on_wait: Callable[[float], None] | None = None) -> Study:
    """Generate, score and store a study from a YAML under configs/studies/ (minutes: it loads the
    study's policies and the scorers), exactly as `make-study` would; `name` overrides the config's."""
    from moodpo.human.study import load_study_config, make_study

    check_admin(config, password)
    overrides = {"name": name.strip()} if isinstance(name, str) and name.strip() else None
    spec = load_study_config(study_config_path(config, config_file), overrides)
    if any(s.name == spec.name for s in votes.studies()):  # before minutes of generation, not after
        raise MoodpoError(f"a study named {spec.name!r} exists already; type another name")
    # Policy paths as written (relative to the working folder), as `python -m moodpo make-study` reads them.
    return run_in_thread(lambda: make_study(spec, votes.data_dir, progress=False), on_wait)


def live_study(votes: VoteStore, store: PolicyStore, config: AppConfig, password: str, name: str | None,
               policy_a: str, weights_a, policy_b: str, weights_b, n, seed=0,
               on_wait: Callable[[float], None] | None = None) -> tuple[Study, int]:
    """n pairs generated now from the app's loaded policies on builtin eval prompts, added to the
    study `name` (created, with one question per objective and overall, if it does not exist).
    Returns (study, pairs added)."""
    from moodpo.data import load_prompts
    from moodpo.sampling_settings import GenerationSettings
    from moodpo.human.study import generate_pairs

    check_admin(config, password)
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise MoodpoError("name the study the pairs go to")
    try:
        count, seed = float(n), float(seed if seed is not None else 0)
    except (TypeError, ValueError):
        raise MoodpoError("pairs and seed must be numbers") from None
    if not math.isfinite(count) or count != int(count) or not 1 <= count <= MAX_LIVE_PAIRS:
        raise MoodpoError(f"pairs must be a whole number from 1 to {MAX_LIVE_PAIRS}, got {n}")
    if not math.isfinite(seed) or seed != int(seed) or seed < 0:
        raise MoodpoError(f"seed must be a whole number >= 0, got {seed}")
    objectives = store.objectives(policy_a)
    if store.objectives(policy_b) != objectives:
        raise MoodpoError(f"the two policies steer different objectives ({', '.join(objectives)} vs "
                          f"{', '.join(store.objectives(policy_b))}); pick two that steer the same")
    wa, wb = (check_weights(split_values(w), objectives).tolist() for w in (weights_a, weights_b))
    existing = next((s for s in votes.studies() if s.name == name), None)
    if existing is not None and tuple(existing.objectives) != tuple(objectives):
        raise MoodpoError(f"study {name!r} is on {', '.join(existing.objectives)}; these policies steer "
                          f"{', '.join(objectives)}")
    prompts = load_prompts("builtin", "eval", limit=int(count), seed=int(seed))
    settings = GenerationSettings(max_new_tokens=config.max_new_tokens, do_sample=True)

    def generate() -> list[dict]:
        return generate_pairs(store.get(policy_a), wa, store.get(policy_b), wb, prompts, list(objectives),
                              settings=settings, seed=int(seed), name_a=policy_a, name_b=policy_b)

    pairs = run_in_thread(generate, on_wait)
    if existing is not None:
        added = votes.add_pairs(existing.id, pairs)
        return votes.study(existing.id), added
    made = votes.create_study(name, pairs, questions=[*objectives, OVERALL], objectives=objectives, overlap=1,
                              config={"live": {"policy_a": policy_a, "weights_a": wa, "policy_b": policy_b,
                                               "weights_b": wb, "seed": int(seed), "prompts": "builtin:eval"}})
    return made, len(pairs)


def _votes_of(votes: VoteStore | None, study_id) -> pd.DataFrame:
    if study_id is None or study_id == "":
        raise MoodpoError("choose a study")
    return need(votes).votes_frame(study_id)


def results(votes: VoteStore | None, config: AppConfig, password: str, study_id) -> dict[str, pd.DataFrame]:
    """The unblinded report of one study (summary, win rates, Bradley-Terry, human vs reward model,
    inter-annotator agreement) plus its comments; tables are empty while it has no votes."""
    from moodpo.human.votestats import report

    check_admin(config, password)
    frame = _votes_of(votes, study_id)
    tables = report(frame, n_boot=REPORT_BOOTSTRAP, bt_boot=REPORT_BT_BOOTSTRAP) if len(frame) else {}
    comments = frame[frame["comment"].fillna("").str.len() > 0].drop_duplicates("vote_id")
    tables["comments"] = comments[["annotator", "system_a", "system_b", "comment", "created"]].reset_index(drop=True)
    return tables


def results_figure(tables: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Bradley-Terry strengths and win rates with their 95% intervals, or a blank figure that says why."""
    from moodpo.human.votestats import report_figure

    if "bradley_terry" not in tables or not len(tables["win_rates"]):
        return empty_figure("No votes yet")
    # plotly renders a few tags (<b>, <a href>) in labels: system names are shown as written
    shown = {key: table.assign(**{c: table[c].map(html.escape) for c in ("system", "opponent") if c in table})
             for key, table in tables.items() if key in ("bradley_terry", "win_rates")}
    return report_figure(shown)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:40] or "study"


def export(votes: VoteStore | None, config: AppConfig, password: str, study_id, out_dir: Path) -> list[Path]:
    """The study's votes as CSV, JSONL and a zip of TRL preference datasets (one folder per question,
    `datasets.load_from_disk` each; ties and both-bad left out), written under out_dir."""
    from moodpo.human.votes import export_csv, export_jsonl, export_preferences

    check_admin(config, password)
    frame = _votes_of(votes, study_id)
    if not len(frame):
        raise MoodpoError("this study has no votes to export yet")
    study = votes.study(study_id)
    stem = f"votes-{_slug(study.name)}"
    out_dir = Path(out_dir)
    written = [export_csv(frame, out_dir / f"{stem}.csv"), export_jsonl(frame, out_dir / f"{stem}.jsonl")]
    datasets_dir = out_dir / f"{stem}-trl"
    for question in dict.fromkeys(frame["question"]):
        export_preferences(frame, datasets_dir / question, question=question)
    written.append(Path(shutil.make_archive(str(datasets_dir), "zip", root_dir=datasets_dir)))
    return written
