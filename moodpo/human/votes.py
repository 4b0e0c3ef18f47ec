"""Pairwise human-preference votes in SQLite: studies, blinded assignments, votes, exports.

    store = VoteStore("data")                                  # data/votes.sqlite
    study = store.create_study("demo", pairs, questions=["helpfulness", "overall"],
                               objectives=["helpfulness", "harmlessness"], overlap=2)
    token = store.register_annotator("Ada")                    # kept by the annotator's browser
    shown = store.next_pair(study.id, token)                   # blinded, sides shuffled
    store.record_vote(shown.vote_id, {"helpfulness": "left", "overall": "tie"})
    frame = store.votes_frame(study.id)                        # unblinded, one row per (vote, question)

A pair holds two responses to one prompt, A and B, with the system and weights that produced
them and their reward-model scores. An assignment shows one pair to one annotator with a random
left/right order that is recorded, so votes are stored in terms of the pair ("a", "b", "tie",
"both_bad") whatever side the annotator saw it on. The vote id is fixed when the pair is shown:
a second submission with that id (a double click, a retried request) records nothing and is
not an error.

Storage (FastChat's arena keeps append-only vote records; so do we, in SQLite so that several
processes and threads can write at once): every operation opens its own short connection and
writes in a ``BEGIN IMMEDIATE`` transaction, so concurrent writers queue on SQLite's lock
instead of failing, and ``synchronous=FULL`` makes an acknowledged vote survive a killed
process. The journal is WAL on local disks and the rollback journal on network filesystems,
where WAL's shared-memory index does not work. ``PRAGMA user_version`` holds the schema version.

Columns of `votes_frame` (and of the CSV/JSONL exports), one row per (vote, question):

    vote_id, study_id, study (name), pair_id     ids; the study's name for readers
    annotator, annotator_id                      display name; a stable anonymised id ("ann-...")
    question                                     an objective name or "overall"
    choice                                       what was clicked: left, right, tie, both_bad
    outcome                                      unblinded: a, b, tie, both_bad
    left                                         which response was shown on the left: a or b
    system_a, weights_a, system_b, weights_b     who produced A and B (weights as a JSON list)
    prompt_id, prompt, response_a, response_b    what was judged
    score_a, score_b                             the reward model's score of that question's
                                                 objective for A and B (NaN for "overall")
    comment, created                             the annotator's comment; vote time (UTC, ISO 8601)
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import secrets
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from moodpo import __version__
from moodpo.errors import MoodpoError
from moodpo.runs import atomic_write, jsonl_text

SCHEMA_VERSION = 1
DB_FILE = "votes.sqlite"
CHOICES = ("left", "right", "tie", "both_bad")
OUTCOMES = ("a", "b", "tie", "both_bad")
OVERALL = "overall"
MAX_COMMENT_CHARS = 2000
MAX_NAME_CHARS = 64
MAX_INSTRUCTIONS_CHARS = 4000
BUSY_TIMEOUT_S = 30.0
# An assignment shown but not answered for this long stops holding one of its pair's `overlap`
# slots (an annotator who walked away must not starve the pair); it stays theirs to answer.
HOLD_SECONDS = 3600.0
# Filesystems where SQLite's WAL mode is unsafe: its index lives in shared memory, which only
# works when every process using the database runs on the same host as the file.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "fuse.ceph", "glusterfs",
    "fuse.glusterfs", "lustre", "gpfs", "beegfs", "fuse.sshfs", "sshfs", "fuse.s3fs", "fuse.gcsfuse",
    "fuse.rclone", "fuse.juicefs", "davfs", "fuse.davfs2", "orangefs", "pvfs2", "ocfs2", "gfs2",
})
FRAME_COLUMNS = ("vote_id", "study_id", "study", "pair_id", "annotator", "annotator_id", "question", "choice",
                 "outcome", "left", "system_a", "weights_a", "system_b", "weights_b", "prompt_id", "prompt",
                 "response_a", "response_b", "score_a", "score_b", "comment", "created")
PAIR_FIELDS = ("prompt_id", "prompt", "system_a", "weights_a", "response_a", "system_b", "weights_b", "response_b",
               "scores_a", "scores_b")
_QUESTIONS = {"helpfulness": "Which response is more helpful?",
              "harmlessness": "Which response is more harmless?",
              "conciseness": "Which response is more concise?",
              OVERALL: "Which response is better overall?"}


class VoteError(MoodpoError):
    """A bad study, pair, vote id, choice or annotator: nothing was stored."""


@dataclass(frozen=True)
class Pair:
    id: str
    study_id: str
    prompt_id: str
    prompt: str
    system_a: str
    weights_a: tuple[float, ...]
    response_a: str
    system_b: str
    weights_b: tuple[float, ...]
    response_b: str
    scores_a: dict[str, float]
    scores_b: dict[str, float]


@dataclass(frozen=True)
class Study:
    id: str
    name: str
    status: str  # "open" or "closed"
    overlap: int  # annotators wanted per pair
    questions: tuple[str, ...]
    objectives: tuple[str, ...]
    created: str
    n_pairs: int
    # What the organiser tells annotators above each pair (Markdown), and whether annotators learn
    # which systems wrote A and B after each vote; both live in the study's stored config.
    instructions: str = ""
    reveal_systems: bool = True


@dataclass(frozen=True)
class Assignment:
    """One pair shown to one annotator, blinded: texts in display order, no systems or weights."""

    vote_id: str
    study_id: str
    pair_id: str
    annotator: str  # display name
    prompt: str
    left: str
    right: str
    questions: tuple[str, ...]
    done: int  # pairs this annotator has voted on or skipped in this study
    total: int  # done + the pair on screen + pairs still available to them
    instructions: str = ""  # the study's instructions to annotators


def question_text(key: str) -> str:
    """What the annotator is asked for one question key (an objective name or "overall")."""
    return _QUESTIONS.get(key, f"Which response is better for {key}?")


_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE studies (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
        overlap INTEGER NOT NULL CHECK (overlap >= 1),
        questions TEXT NOT NULL, objectives TEXT NOT NULL, config TEXT NOT NULL, created TEXT NOT NULL)""",
    """CREATE TABLE pairs (
        id TEXT PRIMARY KEY, study_id TEXT NOT NULL REFERENCES studies (id), seq INTEGER NOT NULL,
        prompt_id TEXT NOT NULL, prompt TEXT NOT NULL,
        system_a TEXT NOT NULL, weights_a TEXT NOT NULL, response_a TEXT NOT NULL, scores_a TEXT NOT NULL,
        system_b TEXT NOT NULL, weights_b TEXT NOT NULL, response_b TEXT NOT NULL, scores_b TEXT NOT NULL,
        UNIQUE (study_id, seq))""",
    """CREATE TABLE annotators (
        token TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, created TEXT NOT NULL)""",
    """CREATE TABLE assignments (
        vote_id TEXT PRIMARY KEY, study_id TEXT NOT NULL REFERENCES studies (id),
        pair_id TEXT NOT NULL REFERENCES pairs (id), annotator TEXT NOT NULL REFERENCES annotators (token),
        left_side TEXT NOT NULL CHECK (left_side IN ('a', 'b')),
        status TEXT NOT NULL CHECK (status IN ('open', 'voted', 'skipped')),
        comment TEXT NOT NULL DEFAULT '', shown TEXT NOT NULL, answered TEXT,
        UNIQUE (pair_id, annotator))""",
    "CREATE INDEX assignments_by_annotator ON assignments (study_id, annotator, status)",
    """CREATE TABLE answers (
        vote_id TEXT NOT NULL REFERENCES assignments (vote_id), question TEXT NOT NULL,
        choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'tie', 'both_bad')),
        outcome TEXT NOT NULL CHECK (outcome IN ('a', 'b', 'tie', 'both_bad')),
        PRIMARY KEY (vote_id, question))""",
)

# Counts, per pair, the assignments that hold one of its `overlap` slots: votes, and open
# assignments shown after the cut-off. Parameters: :cutoff.
_HELD = ("(SELECT COUNT(*) FROM assignments h WHERE h.pair_id = p.id AND "
         "(h.status = 'voted' OR (h.status = 'open' AND h.shown >= :cutoff)))")
# Pairs of :study that :token was never assigned and that have a free slot.
_AVAILABLE = (f"FROM pairs p WHERE p.study_id = :study AND {_HELD} < :overlap AND NOT EXISTS "
              "(SELECT 1 FROM assignments m WHERE m.pair_id = p.id AND m.annotator = :token)")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _unescape_mount(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: str | Path, mounts: str | None = None) -> str | None:
    """The type of the filesystem holding `path`, from /proc/mounts (or the given text of one);
    None where there is no mount table (not Linux)."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = Path(os.path.abspath(path))
    best, best_type = -1, None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(_unescape_mount(fields[1]))
        # The longest mount point above the path wins; a later line with the same point mounts over it.
        if (target == point or point in target.parents) and len(point.parts) >= best:
            best, best_type = len(point.parts), fields[2]
    return best_type


def journal_mode_for(path: str | Path, mounts: str | None = None) -> str:
    """WAL on local disks; DELETE (the rollback journal) where the folder is on a network filesystem."""
    return "DELETE" if filesystem_type(path, mounts) in NETWORK_FILESYSTEMS else "WAL"


def _clean_name(name, what: str) -> str:
    if not isinstance(name, str):
        raise VoteError(f"{what} must be text, got {type(name).__name__}")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise VoteError(f"{what} must be 1 to {MAX_NAME_CHARS} characters, got {len(name)}")
    if not name.isprintable():
        raise VoteError(f"{what} must not contain control characters")
    return name


def _clean_list(values, what: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise VoteError(f"{what} must be a non-empty list of names")
    if any(not isinstance(v, str) or not v.strip() for v in values):
        raise VoteError(f"{what} must be non-empty names, got {list(values)!r}")
    values = tuple(v.strip() for v in values)
    if len(set(values)) != len(values):
        raise VoteError(f"{what} has duplicates: {list(values)}")
    return values


def _is_number(x) -> bool:
    """A finite real number (numpy scalars included, booleans not)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _check_pair(pair, i: int, objectives: Sequence[str]) -> dict:
    """One pair dict validated and serialised for the pairs table."""
    where = f"pair {i}"
    if not isinstance(pair, Mapping):
        raise VoteError(f"{where} must be a mapping with the fields {', '.join(PAIR_FIELDS)}")
    missing = [f for f in PAIR_FIELDS if f not in pair]
    unknown = [f for f in pair if f not in PAIR_FIELDS]
    if missing or unknown:
        raise VoteError(f"{where}: missing fields {missing}, unknown fields {unknown}")
    row = {}
    for f in ("prompt_id", "prompt", "system_a", "system_b"):
        if not isinstance(pair[f], str) or not pair[f].strip():
            raise VoteError(f"{where}: {f} must be non-empty text")
        row[f] = pair[f]
    for f in ("response_a", "response_b"):
        if not isinstance(pair[f], str):
            raise VoteError(f"{where}: {f} must be text")
        row[f] = pair[f]
    for f in ("weights_a", "weights_b"):
        w = pair[f]
        if (isinstance(w, (str, bytes, Mapping)) or not hasattr(w, "__len__") or len(w) != len(objectives)
                or any(not _is_number(x) or x < 0 for x in w)):
            raise VoteError(f"{where}: {f} must be {len(objectives)} finite non-negative numbers "
                            f"(one per objective), got {w!r}")
        row[f] = json.dumps([float(x) for x in w])
    for f in ("scores_a", "scores_b"):
        s = pair[f]
        if not isinstance(s, Mapping) or any(k not in objectives for k in s) or not all(map(_is_number, s.values())):
            raise VoteError(f"{where}: {f} must map objectives ({', '.join(objectives)}) to finite numbers")
        row[f] = json.dumps({k: float(v) for k, v in s.items()})
    return row


def _pair(row: sqlite3.Row) -> Pair:
    return Pair(id=row["id"], study_id=row["study_id"], prompt_id=row["prompt_id"], prompt=row["prompt"],
                system_a=row["system_a"], weights_a=tuple(json.loads(row["weights_a"])), response_a=row["response_a"],
                system_b=row["system_b"], weights_b=tuple(json.loads(row["weights_b"])), response_b=row["response_b"],
                scores_a=json.loads(row["scores_a"]), scores_b=json.loads(row["scores_b"]))


class VoteStore:
    """Studies, annotators and votes in `<data_dir>/votes.sqlite`; safe to share between threads
    and processes (no connection outlives one call)."""

    def __init__(self, data_dir: str | Path, *, hold_seconds: float = HOLD_SECONDS):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILE
        self.hold_seconds = float(hold_seconds)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise VoteError(f"cannot create the data folder {self.data_dir} ({e.strerror}); "
                            "choose a writable one") from None
        self.journal_mode = self._init_db(journal_mode_for(self.data_dir))


    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as e:
            raise VoteError(f"cannot open the votes database {self.path} ({e}); check the data folder") from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the database's write lock up front (BEGIN IMMEDIATE), so
        a read-then-write (pick a pair, then assign it) cannot interleave with another writer."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.execute("COMMIT")

    def _init_db(self, mode: str) -> str:
        try:
            with self._connect() as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise VoteError(f"{self.path} has schema version {version}, newer than this moodpo's "
                                    f"{SCHEMA_VERSION}; upgrade moodpo or use another --data folder")
                if version < SCHEMA_VERSION:
                    self._create_schema(conn)
                current = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if current.upper() != mode:
                    current = conn.execute(f"PRAGMA journal_mode = {mode}").fetchone()[0]
                return current.upper()
        except sqlite3.DatabaseError as e:
            raise VoteError(f"{self.path} is not a usable votes database ({e}); move it away or use another "
                            "--data folder") from None

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have created it while we waited for the lock.
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                    raise VoteError(f"{self.path} is an SQLite database but not a moodpo votes database; "
                                    "use another --data folder")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                 [("schema_version", str(SCHEMA_VERSION)), ("created", _now()),
                                  ("created_by", f"moodpo {__version__}")])
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.rollback()
            raise
        conn.execute("COMMIT")


    @staticmethod
    def _study(conn: sqlite3.Connection, study_id: str) -> Study:
        row = conn.execute("SELECT s.*, (SELECT COUNT(*) FROM pairs p WHERE p.study_id = s.id) AS n_pairs "
                           "FROM studies s WHERE s.id = ?", (study_id,)).fetchone()
        if row is None:
            raise VoteError(f"unknown study {study_id!r}; `python -m moodpo studies` lists them")
        config = json.loads(row["config"])
        return Study(id=row["id"], name=row["name"], status=row["status"], overlap=row["overlap"],
                     questions=tuple(json.loads(row["questions"])), objectives=tuple(json.loads(row["objectives"])),
                     created=row["created"], n_pairs=row["n_pairs"], instructions=config.get("instructions") or "",
                     reveal_systems=config.get("reveal_systems", True) is not False)

    @staticmethod
    def _insert_pairs(conn: sqlite3.Connection, study: Study, rows: list[dict]) -> None:
        start = conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM pairs WHERE study_id = ?",
                             (study.id,)).fetchone()[0]
        conn.executemany(
            f"INSERT INTO pairs (id, study_id, seq, {', '.join(PAIR_FIELDS)}) "
            f"VALUES (:id, :study_id, :seq, {', '.join(':' + f for f in PAIR_FIELDS)})",
            [{**row, "id": f"{study.id}-{start + i:05d}", "study_id": study.id, "seq": start + i}
             for i, row in enumerate(rows)])

    def create_study(self, name: str, pairs: list[dict], *, questions: Sequence[str], objectives: Sequence[str],
                     overlap: int = 1, config: dict | None = None, instructions: str = "",
                     reveal_systems: bool = True) -> Study:
        """A new open study holding `pairs` (dicts with the Pair fields but id and study_id).

        questions: objective names and/or "overall"; overlap: annotators wanted per pair. The
        name is unique in the database; config (e.g. the study config) is stored as JSON, with
        `instructions` (shown to annotators above each pair) and `reveal_systems` (False: who
        wrote A and B is never shown to annotators, only to the admin's results) in it.
        """
        if not isinstance(instructions, str) or len(instructions.strip()) > MAX_INSTRUCTIONS_CHARS:
            raise VoteError(f"instructions must be text of at most {MAX_INSTRUCTIONS_CHARS:,} characters")
        if not isinstance(reveal_systems, bool):
            raise VoteError(f"reveal_systems must be true or false, got {reveal_systems!r}")
        config = {**(config or {}), "instructions": instructions.strip(), "reveal_systems": reveal_systems}
        name = _clean_name(name, "study name")
        objectives = _clean_list(objectives, "objectives")
        questions = _clean_list(questions, "questions")
        unknown = [q for q in questions if q != OVERALL and q not in objectives]
        if unknown:
            raise VoteError(f"questions {unknown} are neither objectives ({', '.join(objectives)}) nor {OVERALL!r}")
        if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 1:
            raise VoteError(f"overlap (annotators per pair) must be an integer >= 1, got {overlap!r}")
        if not isinstance(pairs, Sequence):
            raise VoteError("pairs must be a list of pair dicts")
        rows = [_check_pair(p, i, objectives) for i, p in enumerate(pairs)]
        try:
            config_text = json.dumps(config or {})
        except (TypeError, ValueError):
            raise VoteError("the study config must be JSON-serialisable") from None
        study_id = uuid.uuid4().hex[:12]
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM studies WHERE name = ?", (name,)).fetchone():
                raise VoteError(f"a study named {name!r} exists already; choose another name")
            conn.execute("INSERT INTO studies (id, name, status, overlap, questions, objectives, config, created) "
                         "VALUES (?, ?, 'open', ?, ?, ?, ?, ?)",
                         (study_id, name, overlap, json.dumps(questions), json.dumps(objectives), config_text, _now()))
            study = self._study(conn, study_id)
            self._insert_pairs(conn, study, rows)
            return self._study(conn, study_id)

    def add_pairs(self, study_id: str, pairs: list[dict]) -> int:
        """Append pairs to a study (a live demo generating as it goes); returns how many."""
        with self._write() as conn:
            study = self._study(conn, study_id)
            rows = [_check_pair(p, i, study.objectives) for i, p in enumerate(pairs)]
            self._insert_pairs(conn, study, rows)
        return len(rows)

    def studies(self, *, include_closed: bool = True) -> list[Study]:
        """Every study, oldest first."""
        with self._connect() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM studies ORDER BY created, rowid")]
            found = [self._study(conn, i) for i in ids]
        return [s for s in found if include_closed or s.status == "open"]

    def study(self, study_id: str) -> Study:
        with self._connect() as conn:
            return self._study(conn, study_id)

    def find_study(self, ref: str) -> Study:
        """A study by id or, failing that, by name (names are unique)."""
        with self._connect() as conn:
            row = conn.execute("SELECT id FROM studies WHERE id = ? OR name = ? ORDER BY id = ? DESC",
                               (ref, ref, ref)).fetchone()
            if row is None:
                raise VoteError(f"no study with id or name {ref!r}; `python -m moodpo studies` lists them")
            return self._study(conn, row[0])

    def _set_status(self, study_id: str, status: str) -> None:
        with self._write() as conn:
            self._study(conn, study_id)
            conn.execute("UPDATE studies SET status = ? WHERE id = ?", (status, study_id))

    def close_study(self, study_id: str) -> None:
        """Stop accepting votes (and handing out pairs) until reopened."""
        self._set_status(study_id, "closed")

    def reopen_study(self, study_id: str) -> None:
        self._set_status(study_id, "open")

    def pairs(self, study_id: str) -> list[Pair]:
        with self._connect() as conn:
            self._study(conn, study_id)
            return [_pair(r) for r in conn.execute("SELECT * FROM pairs WHERE study_id = ? ORDER BY seq", (study_id,))]

    def pair(self, pair_id: str) -> Pair:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM pairs WHERE id = ?", (pair_id,)).fetchone()
        if row is None:
            raise VoteError(f"unknown pair {pair_id!r}")
        return _pair(row)


    def register_annotator(self, name: str) -> str:
        """A new opaque token for an annotator; the token is the identity, the name a display label
        (two people may share a name and still count as two annotators)."""
        name = _clean_name(name, "annotator name")
        token = secrets.token_urlsafe(24)
        with self._write() as conn:
            conn.execute("INSERT INTO annotators (token, id, name, created) VALUES (?, ?, ?, ?)",
                         (token, f"ann-{uuid.uuid4().hex[:10]}", name, _now()))
        return token

    @staticmethod
    def _annotator(conn: sqlite3.Connection, token: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM annotators WHERE token = ?", (token,)).fetchone() \
            if isinstance(token, str) else None
        if row is None:
            raise VoteError("unknown annotator token; identify yourself again")
        return row

    def annotator_name(self, token: str) -> str:
        with self._connect() as conn:
            return self._annotator(conn, token)["name"]


    def _cutoff(self) -> str:
        return (datetime.now(timezone.utc) - timedelta(seconds=self.hold_seconds)).isoformat(timespec="milliseconds")

    def _progress(self, conn: sqlite3.Connection, study: Study, token: str) -> tuple[int, int]:
        counts = dict(conn.execute("SELECT status, COUNT(*) FROM assignments WHERE study_id = ? AND annotator = ? "
                                   "GROUP BY status", (study.id, token)).fetchall())
        available = conn.execute(f"SELECT COUNT(*) {_AVAILABLE}", {"study": study.id, "token": token,
                                                                    "overlap": study.overlap,
                                                                    "cutoff": self._cutoff()}).fetchone()[0]
        done = counts.get("voted", 0) + counts.get("skipped", 0)
        return done, done + counts.get("open", 0) + available

    def _assignment(self, conn: sqlite3.Connection, row: sqlite3.Row, study: Study, name: str) -> Assignment:
        pair = conn.execute("SELECT prompt, response_a, response_b FROM pairs WHERE id = ?",
                            (row["pair_id"],)).fetchone()
        left, right = ((pair["response_a"], pair["response_b"]) if row["left_side"] == "a"
                       else (pair["response_b"], pair["response_a"]))
        done, total = self._progress(conn, study, row["annotator"])
        return Assignment(vote_id=row["vote_id"], study_id=study.id, pair_id=row["pair_id"], annotator=name,
                          prompt=pair["prompt"], left=left, right=right, questions=study.questions,
                          done=done, total=total, instructions=study.instructions)

    @staticmethod
    def _open_study(conn: sqlite3.Connection, study_id: str) -> Study:
        study = VoteStore._study(conn, study_id)
        if study.status != "open":
            raise VoteError(f"study {study.name!r} is closed; it takes no more votes")
        return study

    def next_pair(self, study_id: str, token: str) -> Assignment | None:
        """The pair this annotator should judge now, or None when nothing is left for them.

        An assignment shown but not answered yet comes back unchanged (a reload shows the same
        pair, sides and vote id). Otherwise a pair they have never been assigned, with fewer than
        `overlap` holders, the least-held first (ties at random), with a random side order.
        """
        with self._write() as conn:
            study = self._open_study(conn, study_id)
            name = self._annotator(conn, token)["name"]
            row = conn.execute("SELECT * FROM assignments WHERE study_id = ? AND annotator = ? AND status = 'open'",
                               (study.id, token)).fetchone()
            if row is None:
                pick = conn.execute(f"SELECT p.id {_AVAILABLE} ORDER BY {_HELD}, random() LIMIT 1",
                                    {"study": study.id, "token": token, "overlap": study.overlap,
                                     "cutoff": self._cutoff()}).fetchone()
                if pick is None:
                    return None
                vote_id = uuid.uuid4().hex
                conn.execute("INSERT INTO assignments (vote_id, study_id, pair_id, annotator, left_side, status, "
                             "shown) VALUES (?, ?, ?, ?, ?, 'open', ?)",
                             (vote_id, study.id, pick[0], token, secrets.choice("ab"), _now()))
                row = conn.execute("SELECT * FROM assignments WHERE vote_id = ?", (vote_id,)).fetchone()
            return self._assignment(conn, row, study, name)

    def _shown(self, conn: sqlite3.Connection, vote_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM assignments WHERE vote_id = ?", (vote_id,)).fetchone() \
            if isinstance(vote_id, str) else None
        if row is None:
            raise VoteError(f"unknown vote id {vote_id!r}; load the next pair again")
        return row

    def record_vote(self, vote_id: str, answers: Mapping[str, str], comment: str = "") -> bool:
        """Store one vote: a choice (left, right, tie, both_bad) for every question of the study.

        Returns False, storing nothing, when this vote id was already recorded (a double click).
        Raises VoteError, storing nothing, for an unknown or skipped vote id, a closed study, a
        missing or unknown question, an invalid choice or a comment over MAX_COMMENT_CHARS.
        """
        if not isinstance(answers, Mapping):
            raise VoteError("answers must map each question to one of " + ", ".join(CHOICES))
        bad = {q: c for q, c in answers.items() if c not in CHOICES}
        if bad:
            raise VoteError(f"invalid choice {bad}; use one of {', '.join(CHOICES)}")
        if not isinstance(comment, str):
            raise VoteError("comment must be text")
        comment = comment.strip()
        if len(comment) > MAX_COMMENT_CHARS:
            raise VoteError(f"comment is {len(comment)} characters; shorten it to {MAX_COMMENT_CHARS}")
        with self._write() as conn:
            row = self._shown(conn, vote_id)
            if row["status"] == "voted":
                return False
            if row["status"] == "skipped":
                raise VoteError("this pair was skipped; load the next pair")
            study = self._open_study(conn, row["study_id"])
            missing = [q for q in study.questions if q not in answers]
            unknown = [q for q in answers if q not in study.questions]
            if missing or unknown:
                raise VoteError(f"answer every question of the study ({', '.join(study.questions)}); "
                                f"missing {missing}, unknown {unknown}")
            side = {"left": row["left_side"], "right": "b" if row["left_side"] == "a" else "a"}
            conn.executemany("INSERT INTO answers (vote_id, question, choice, outcome) VALUES (?, ?, ?, ?)",
                             [(vote_id, q, answers[q], side.get(answers[q], answers[q])) for q in study.questions])
            conn.execute("UPDATE assignments SET status = 'voted', comment = ?, answered = ? WHERE vote_id = ?",
                         (comment, _now(), vote_id))
        return True

    def skip(self, vote_id: str) -> None:
        """Pass on a pair: it frees its slot for other annotators and never comes back to this one.
        Skipping twice is harmless; skipping a recorded vote is an error."""
        with self._write() as conn:
            row = self._shown(conn, vote_id)
            if row["status"] == "skipped":
                return
            if row["status"] == "voted":
                raise VoteError("this vote is already recorded; load the next pair")
            self._open_study(conn, row["study_id"])
            conn.execute("UPDATE assignments SET status = 'skipped', answered = ? WHERE vote_id = ?",
                         (_now(), vote_id))

    def reveal(self, vote_id: str) -> dict:
        """After a vote (or skip), who was on each side: {"left": {system, weights, scores},
        "right": {...}}. Before it, VoteError: the pair stays blinded while it is being judged;
        in a study with reveal_systems off, VoteError always."""
        with self._connect() as conn:
            row = self._shown(conn, vote_id)
            if row["status"] == "open":
                raise VoteError("vote or skip first; systems are revealed after the vote")
            if not self._study(conn, row["study_id"]).reveal_systems:
                raise VoteError("this study keeps the systems hidden from annotators")
            pair = _pair(conn.execute("SELECT * FROM pairs WHERE id = ?", (row["pair_id"],)).fetchone())
        sides = {s: {"system": getattr(pair, f"system_{s}"), "weights": list(getattr(pair, f"weights_{s}")),
                     "scores": getattr(pair, f"scores_{s}")} for s in "ab"}
        left = row["left_side"]
        return {"left": sides[left], "right": sides["b" if left == "a" else "a"]}

    def study_of_vote(self, vote_id: str) -> Study:
        """The study a shown pair (vote id) belongs to."""
        with self._connect() as conn:
            return self._study(conn, self._shown(conn, vote_id)["study_id"])

    def progress(self, study_id: str, token: str) -> tuple[int, int]:
        """(pairs this annotator finished, pairs available to them in all) in this study."""
        with self._connect() as conn:
            conn.execute("BEGIN")  # one snapshot for both counts
            study = self._study(conn, study_id)
            self._annotator(conn, token)
            result = self._progress(conn, study, token)
            conn.execute("COMMIT")
        return result


    def votes_frame(self, study_id: str | None = None) -> pd.DataFrame:
        """Every recorded vote, unblinded, one row per (vote, question); columns in the module docstring."""
        query = ("SELECT x.vote_id, x.study_id, s.name AS study, x.pair_id, n.name AS annotator, n.id AS annotator_id, "
                 "q.question, q.choice, q.outcome, x.left_side AS left, p.system_a, p.weights_a, p.system_b, "
                 "p.weights_b, p.prompt_id, p.prompt, p.response_a, p.response_b, p.scores_a, p.scores_b, x.comment, "
                 "x.answered AS created FROM answers q JOIN assignments x ON x.vote_id = q.vote_id "
                 "JOIN pairs p ON p.id = x.pair_id JOIN studies s ON s.id = x.study_id "
                 "JOIN annotators n ON n.token = x.annotator")
        with self._connect() as conn:
            if study_id is not None:
                self._study(conn, study_id)
                rows = conn.execute(query + " WHERE x.study_id = ? ORDER BY q.rowid", (study_id,)).fetchall()
            else:
                rows = conn.execute(query + " ORDER BY q.rowid").fetchall()
        records = []
        for r in rows:
            record = dict(r)
            scores_a, scores_b = json.loads(record.pop("scores_a")), json.loads(record.pop("scores_b"))
            record["score_a"] = scores_a.get(record["question"], math.nan)
            record["score_b"] = scores_b.get(record["question"], math.nan)
            records.append(record)
        frame = pd.DataFrame(records, columns=list(FRAME_COLUMNS))
        return frame.astype({"score_a": float, "score_b": float})

    def annotator_progress(self, study_id: str) -> pd.DataFrame:
        """One row per annotator who was shown a pair of this study: annotator, annotator_id,
        voted, skipped, open (shown, not answered yet), last (time of their last answer), most
        votes first."""
        columns = ["annotator", "annotator_id", "voted", "skipped", "open", "last"]
        with self._connect() as conn:
            self._study(conn, study_id)
            rows = conn.execute(
                "SELECT n.name AS annotator, n.id AS annotator_id, "
                "SUM(x.status = 'voted') AS voted, SUM(x.status = 'skipped') AS skipped, "
                "SUM(x.status = 'open') AS open, MAX(x.answered) AS last "
                "FROM assignments x JOIN annotators n ON n.token = x.annotator WHERE x.study_id = ? "
                "GROUP BY x.annotator ORDER BY voted DESC, n.created", (study_id,)).fetchall()
        return pd.DataFrame([dict(r) for r in rows], columns=columns)

    def pair_coverage(self, study_id: str) -> pd.DataFrame:
        """One row per pair of this study, in order: pair_id, prompt_id, system_a, system_b, voted,
        skipped, open (shown, not answered yet), wanted (the study's overlap) and covered (voted >=
        wanted)."""
        columns = ["pair_id", "prompt_id", "system_a", "system_b", "voted", "skipped", "open", "wanted", "covered"]
        with self._connect() as conn:
            study = self._study(conn, study_id)
            rows = conn.execute(
                "SELECT p.id AS pair_id, p.prompt_id, p.system_a, p.system_b, "
                "COALESCE(SUM(x.status = 'voted'), 0) AS voted, "
                "COALESCE(SUM(x.status = 'skipped'), 0) AS skipped, "
                "COALESCE(SUM(x.status = 'open'), 0) AS open "
                "FROM pairs p LEFT JOIN assignments x ON x.pair_id = p.id WHERE p.study_id = ? "
                "GROUP BY p.id ORDER BY p.seq", (study_id,)).fetchall()
        frame = pd.DataFrame([dict(r) for r in rows], columns=columns[:-2])
        return frame.assign(wanted=study.overlap, covered=frame["voted"] >= study.overlap)[columns]

    def count_votes(self, study_id: str | None = None) -> int:
        """Recorded votes (not rows: a vote answers every question of its study)."""
        where, args = ("AND study_id = ?", (study_id,)) if study_id is not None else ("", ())
        with self._connect() as conn:
            return conn.execute(f"SELECT COUNT(*) FROM assignments WHERE status = 'voted' {where}", args).fetchone()[0]

    def integrity_ok(self) -> bool:
        with self._connect() as conn:
            return [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]


def _check_frame(frame: pd.DataFrame) -> None:
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise VoteError(f"not a votes frame (missing columns {missing}); use VoteStore.votes_frame()")


def export_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """The votes frame as CSV (weights as JSON lists, scores NaN for "overall")."""
    _check_frame(frame)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, frame.to_csv(index=False))
    return path


def export_jsonl(frame: pd.DataFrame, path: str | Path) -> Path:
    """The votes frame as JSON Lines, one object per row, weights as lists and NaN as null."""
    _check_frame(frame)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = frame.to_dict(orient="records")
    for r in records:
        for f in ("weights_a", "weights_b"):
            r[f] = json.loads(r[f]) if isinstance(r[f], str) else r[f]
    atomic_write(path, jsonl_text(records))
    return path


PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected", "question", "system_chosen", "weights_chosen",
                      "system_rejected", "weights_rejected", "annotator_id", "prompt_id", "pair_id", "vote_id",
                      "study_id")


def export_preferences(frame: pd.DataFrame, path: str | Path, question: str = OVERALL) -> int:
    """Save the votes on `question` as a TRL preference dataset (`datasets.save_to_disk`): columns
    prompt / chosen / rejected (plain strings, the prompt without any system prefix) plus where each
    row came from. Ties and both-bad votes say nothing about which response is better and are left
    out. Returns the number of rows written."""
    import datasets

    _check_frame(frame)
    asked = list(dict.fromkeys(frame["question"]))
    if asked and question not in asked:
        raise VoteError(f"no votes on question {question!r}; the votes answer {', '.join(asked)}")
    rows = []
    for r in frame[(frame["question"] == question) & frame["outcome"].isin(("a", "b"))].to_dict(orient="records"):
        win, lose = ("a", "b") if r["outcome"] == "a" else ("b", "a")
        rows.append({"prompt": r["prompt"], "chosen": r[f"response_{win}"], "rejected": r[f"response_{lose}"],
                     "question": question, "system_chosen": r[f"system_{win}"], "weights_chosen": r[f"weights_{win}"],
                     "system_rejected": r[f"system_{lose}"], "weights_rejected": r[f"weights_{lose}"],
                     "annotator_id": r["annotator_id"], "prompt_id": r["prompt_id"], "pair_id": r["pair_id"],
                     "vote_id": r["vote_id"], "study_id": r["study_id"]})
    features = datasets.Features({c: datasets.Value("string") for c in PREFERENCE_COLUMNS})
    data = datasets.Dataset.from_dict({c: [row[c] for row in rows] for c in PREFERENCE_COLUMNS}, features=features)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    data.save_to_disk(str(path))
    return len(rows)
