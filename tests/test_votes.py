"""The vote store: schema, journal mode, blinded assignments, idempotent votes, concurrency, exports."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from moodpo.human.votes import (CHOICES, FRAME_COLUMNS, MAX_COMMENT_CHARS, SCHEMA_VERSION, VoteError, VoteStore,
                          export_csv, export_jsonl, export_preferences, filesystem_type, journal_mode_for,
                          question_text)

OBJECTIVES = ("helpfulness", "harmlessness")
QUESTIONS = ("helpfulness", "harmlessness", "overall")


def make_pairs(n: int) -> list[dict]:
    return [{"prompt_id": f"p{k}", "prompt": f"prompt {k}", "system_a": "moodpo", "weights_a": (0.7, 0.3),
             "response_a": f"A{k}", "system_b": "base", "weights_b": (0.7, 0.3), "response_b": f"B{k}",
             "scores_a": {"helpfulness": 0.8, "harmlessness": 0.4},
             "scores_b": {"helpfulness": 0.2, "harmlessness": 0.6}}
            for k in range(n)]


@pytest.fixture
def store(tmp_path):
    return VoteStore(tmp_path / "data")


def new_study(store, n=3, overlap=1, name="s"):
    return store.create_study(name, make_pairs(n), questions=QUESTIONS, objectives=OBJECTIVES, overlap=overlap)


def answers(choice="left"):
    return dict.fromkeys(QUESTIONS, choice)


def test_schema_version_and_newer_schema_refused(tmp_path):
    store = VoteStore(tmp_path)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert dict(conn.execute("SELECT key, value FROM meta"))["schema_version"] == str(SCHEMA_VERSION)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(VoteError, match="newer"):
        VoteStore(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "votes.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(VoteError, match="not a usable votes database"):
        VoteStore(tmp_path / "junk")


MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
server:/export /mnt/share nfs4 rw,relatime 0 0
/dev/sdb1 /mnt/share/local ext4 rw 0 0
//nas/team /mnt/my\\040team cifs rw 0 0
host:/home /home/ada/remote fuse.sshfs rw 0 0
"""


@pytest.mark.parametrize("path, fstype, mode", [
    ("/home/ada/data", "ext4", "WAL"),
    ("/mnt/share/votes", "nfs4", "DELETE"),
    ("/mnt/share", "nfs4", "DELETE"),
    ("/mnt/share/local/votes", "ext4", "WAL"),      # the longest mount point wins
    ("/mnt/sharedisk", "ext4", "WAL"),              # a prefix of the name is not a parent
    ("/mnt/my team/data", "cifs", "DELETE"),        # \040 is a space
    ("/home/ada/remote/x", "fuse.sshfs", "DELETE"),
])
def test_journal_mode_follows_the_filesystem(path, fstype, mode):
    assert filesystem_type(path, MOUNTS) == fstype
    assert journal_mode_for(path, MOUNTS) == mode


def test_store_applies_the_journal_mode(tmp_path, monkeypatch):
    assert VoteStore(tmp_path / "local").journal_mode == journal_mode_for(tmp_path)
    monkeypatch.setattr("moodpo.human.votes.journal_mode_for", lambda path: "DELETE")
    store = VoteStore(tmp_path / "network")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    assert store.journal_mode == "DELETE"


def test_create_study_validates_and_stores_nothing_on_error(store):
    bad = [
        dict(name="", pairs=make_pairs(1)),
        dict(name="x" * 65, pairs=make_pairs(1)),
        dict(questions=("overall", "kindness")),
        dict(questions=()),
        dict(overlap=0),
        dict(pairs=[{**make_pairs(1)[0], "weights_a": (1.0,)}]),
        dict(pairs=[{**make_pairs(1)[0], "weights_b": (float("nan"), 1.0)}]),
        dict(pairs=[{**make_pairs(1)[0], "scores_a": {"kindness": 1.0}}]),
        dict(pairs=[{**make_pairs(1)[0], "scores_b": {"helpfulness": float("inf")}}]),
        dict(pairs=[{k: v for k, v in make_pairs(1)[0].items() if k != "prompt"}]),
        dict(pairs=[{**make_pairs(1)[0], "extra": 1}]),
        dict(pairs=make_pairs(2) + ["not a pair"]),
    ]
    for kwargs in bad:
        args = dict(name="s", pairs=make_pairs(2), questions=QUESTIONS, objectives=OBJECTIVES) | kwargs
        with pytest.raises(VoteError):
            store.create_study(args.pop("name"), args.pop("pairs"), **args)
    assert store.studies() == []
    study = new_study(store)
    assert (study.status, study.n_pairs, study.questions, study.objectives) == ("open", 3, QUESTIONS, OBJECTIVES)
    with pytest.raises(VoteError, match="exists already"):
        new_study(store)
    assert store.find_study("s") == store.find_study(study.id) == study
    with pytest.raises(VoteError, match="no study"):
        store.find_study("nope")
    assert store.add_pairs(study.id, make_pairs(2)) == 2
    pairs = store.pairs(study.id)
    assert len(pairs) == 5 and len({p.id for p in pairs}) == 5
    assert pairs[0].weights_a == (0.7, 0.3) and pairs[0].scores_b == {"helpfulness": 0.2, "harmlessness": 0.6}
    assert store.pair(pairs[-1].id) == pairs[-1]


def test_annotators(store):
    token = store.register_annotator("  Ada  ")
    assert store.annotator_name(token) == "Ada"
    assert store.register_annotator("Ada") != token  # the token is the identity, the name a label
    for name in ("", "   ", "x" * 65, "a\nb", "a\x00b", None):
        with pytest.raises(VoteError):
            store.register_annotator(name)
    with pytest.raises(VoteError, match="unknown annotator"):
        store.annotator_name("forged")


def test_question_text():
    assert question_text("helpfulness") == "Which response is more helpful?"
    assert question_text("harmlessness") == "Which response is more harmless?"
    assert question_text("conciseness") == "Which response is more concise?"
    assert question_text("overall") == "Which response is better overall?"
    assert question_text("hf:my/rm") == "Which response is better for hf:my/rm?"


def test_assignment_is_blinded_reload_safe_and_unblinded_on_record(store):
    study = new_study(store, n=1)
    token = store.register_annotator("Ada")
    shown = store.next_pair(study.id, token)
    assert (shown.done, shown.total, shown.questions, shown.annotator) == (0, 1, QUESTIONS, "Ada")
    assert {shown.left, shown.right} == {"A0", "B0"} and shown.prompt == "prompt 0"
    assert store.next_pair(study.id, token) == shown  # a reload shows the same pair, sides and vote id
    with pytest.raises(VoteError, match="revealed after"):
        store.reveal(shown.vote_id)
    assert store.record_vote(shown.vote_id, {"helpfulness": "left", "harmlessness": "right", "overall": "tie"},
                             comment=" <b>fine</b> ")
    left = "a" if shown.left == "A0" else "b"
    right = "b" if left == "a" else "a"
    frame = store.votes_frame(study.id)
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert list(frame["outcome"]) == [left, right, "tie"] and list(frame["left"]) == [left] * 3
    assert list(frame["choice"]) == ["left", "right", "tie"]
    assert frame["score_a"].tolist()[:2] == [0.8, 0.4] and frame["score_a"].isna().tolist()[2]
    assert set(frame["comment"]) == {"<b>fine</b>"} and set(frame["annotator"]) == {"Ada"}
    assert frame["annotator_id"].str.startswith("ann-").all() and token not in frame.to_string()
    revealed = store.reveal(shown.vote_id)
    assert revealed["left"]["system"] == ("moodpo" if left == "a" else "base")
    assert revealed["left"]["weights"] == [0.7, 0.3]
    assert store.next_pair(study.id, token) is None
    assert store.progress(study.id, token) == (1, 1)


def test_double_click_records_once(store):
    study = new_study(store, n=2)
    shown = store.next_pair(study.id, store.register_annotator("Ada"))
    assert store.record_vote(shown.vote_id, answers("left")) is True
    assert store.record_vote(shown.vote_id, answers("left")) is False
    assert store.record_vote(shown.vote_id, answers("right")) is False  # the first click stands
    assert store.count_votes() == 1 and len(store.votes_frame()) == 3
    assert set(store.votes_frame()["choice"]) == {"left"}


def test_bad_votes_store_nothing(store):
    study = new_study(store, n=2)
    shown = store.next_pair(study.id, store.register_annotator("Ada"))
    cases = [
        (shown.vote_id, {**answers(), "overall": "A better"}, ""),
        (shown.vote_id, {"helpfulness": "left", "overall": "left"}, ""),           # a question missing
        (shown.vote_id, {**answers(), "kindness": "left"}, ""),                    # an unknown question
        (shown.vote_id, answers(), "x" * (MAX_COMMENT_CHARS + 1)),
        (shown.vote_id, answers(), "x" * 1_000_000),
        (shown.vote_id, "left", ""),
        (shown.vote_id, answers(), 5),
        ("0" * 32, answers(), ""),
        (None, answers(), ""),
    ]
    for vote_id, given, comment in cases:
        with pytest.raises(VoteError):
            store.record_vote(vote_id, given, comment)
    assert store.count_votes() == 0 and store.votes_frame().empty
    assert store.record_vote(shown.vote_id, answers("both_bad"), "x" * MAX_COMMENT_CHARS)
    assert store.integrity_ok()


def test_each_annotator_sees_each_pair_once_and_overlap_holds(store):
    study = new_study(store, n=4, overlap=2)
    tokens = [store.register_annotator(f"a{k}") for k in range(3)]
    seen = {t: [] for t in tokens}
    progress = True
    while progress:  # round robin, as annotators working side by side
        progress = False
        for t in tokens:
            shown = store.next_pair(study.id, t)
            if shown is not None:
                seen[t].append(shown.pair_id)
                assert store.record_vote(shown.vote_id, answers(CHOICES[len(seen[t]) % 4]))
                progress = True
    for t, pairs in seen.items():
        assert len(pairs) == len(set(pairs))
        assert store.progress(study.id, t) == (len(pairs), len(pairs))
    frame = store.votes_frame(study.id)
    per_pair = frame[frame["question"] == "overall"].groupby("pair_id").size()
    assert len(per_pair) == 4 and (per_pair == 2).all()  # every pair got exactly `overlap` votes
    assert store.count_votes(study.id) == 8


def test_least_held_pairs_come_first(store):
    study = new_study(store, n=3, overlap=2)
    first = [store.next_pair(study.id, store.register_annotator(f"a{k}")).pair_id for k in range(3)]
    assert sorted(first) == sorted(p.id for p in store.pairs(study.id))


def test_skip_frees_the_slot_and_never_comes_back(store):
    study = new_study(store, n=1, overlap=1)
    ada, bob = store.register_annotator("Ada"), store.register_annotator("Bob")
    shown = store.next_pair(study.id, ada)
    assert store.next_pair(study.id, bob) is None  # the only slot is held
    store.skip(shown.vote_id)
    store.skip(shown.vote_id)  # twice is harmless
    assert store.next_pair(study.id, ada) is None
    assert store.progress(study.id, ada) == (1, 1)
    with pytest.raises(VoteError, match="skipped"):
        store.record_vote(shown.vote_id, answers())
    other = store.next_pair(study.id, bob)
    assert other.pair_id == shown.pair_id and other.vote_id != shown.vote_id
    store.record_vote(other.vote_id, answers())
    with pytest.raises(VoteError, match="already recorded"):
        store.skip(other.vote_id)
    assert store.count_votes() == 1


def test_abandoned_assignment_stops_holding_its_slot(tmp_path):
    store = VoteStore(tmp_path, hold_seconds=0)
    study = new_study(store, n=1, overlap=1)
    ada, bob = store.register_annotator("Ada"), store.register_annotator("Bob")
    held = store.next_pair(study.id, ada)
    assert store.next_pair(study.id, bob).pair_id == held.pair_id
    assert store.next_pair(study.id, ada) == held  # still Ada's to answer


def test_closed_study_takes_no_votes(store):
    study = new_study(store, n=2)
    ada = store.register_annotator("Ada")
    shown = store.next_pair(study.id, ada)
    store.close_study(study.id)
    assert store.study(study.id).status == "closed" and store.studies(include_closed=False) == []
    with pytest.raises(VoteError, match="closed"):
        store.next_pair(study.id, ada)
    with pytest.raises(VoteError, match="closed"):
        store.record_vote(shown.vote_id, answers())
    assert store.count_votes() == 0
    store.reopen_study(study.id)
    assert store.record_vote(shown.vote_id, answers())
    for call in (store.close_study, store.reopen_study, store.study, store.votes_frame):
        with pytest.raises(VoteError, match="unknown study"):
            call("nope")
    with pytest.raises(VoteError, match="unknown annotator"):
        store.next_pair(study.id, "forged")


def annotate(data_dir, study_id: str, name: str) -> int:
    """One annotator voting through everything, each vote submitted twice (a double click)."""
    store = VoteStore(data_dir)
    token = store.register_annotator(name)
    recorded = 0
    while (shown := store.next_pair(study_id, token)) is not None:
        recorded += store.record_vote(shown.vote_id, answers("left"))
        assert not store.record_vote(shown.vote_id, answers("left"))
    return recorded


def test_eight_threads_record_exact_counts(tmp_path):
    store = VoteStore(tmp_path)
    study = new_study(store, n=12, overlap=8)
    counts, errors = [], []

    def run(k):
        try:
            counts.append(annotate(tmp_path, study.id, f"t{k}"))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and counts == [12] * 8
    frame = store.votes_frame(study.id)
    assert store.count_votes() == 96 and len(frame) == 96 * len(QUESTIONS)
    assert not frame.duplicated(["pair_id", "annotator_id", "question"]).any()
    assert store.integrity_ok()


def test_processes_share_the_database(tmp_path):
    store = VoteStore(tmp_path)
    study = new_study(store, n=6, overlap=3)
    script = ("import sys; from test_votes import annotate; "
              "print(annotate(sys.argv[1], sys.argv[2], sys.argv[3]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), study.id, f"p{k}"], env=env,
                              stdout=subprocess.PIPE, text=True) for k in range(3)]
    counts = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert counts == [6, 6, 6] and store.count_votes() == 18 and store.integrity_ok()


def test_exports(store, tmp_path):
    import datasets

    study = new_study(store, n=4)
    token = store.register_annotator("Ada")
    outcomes = {}
    for choice in ("left", "right", "tie", "both_bad"):
        shown = store.next_pair(study.id, token)
        store.record_vote(shown.vote_id, answers(choice))
        outcomes[shown.pair_id] = choice
    frame = store.votes_frame(study.id)

    back = pd.read_csv(export_csv(frame, tmp_path / "out" / "votes.csv"))
    assert list(back.columns) == list(FRAME_COLUMNS) and len(back) == 12
    lines = [json.loads(ln) for ln in export_jsonl(frame, tmp_path / "votes.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and lines[0]["weights_a"] == [0.7, 0.3]
    assert lines[2]["question"] == "overall" and lines[2]["score_a"] is None

    assert export_preferences(frame, tmp_path / "trl") == 2  # the tie and both-bad votes are left out
    data = datasets.load_from_disk(str(tmp_path / "trl"))
    assert {"prompt", "chosen", "rejected", "question", "system_chosen", "system_rejected",
            "annotator_id"} <= set(data.column_names)
    assert len(data) == 2 and set(data["question"]) == {"overall"}
    for row in data:
        k = row["prompt"].split()[-1]
        assert {row["chosen"], row["rejected"]} == {f"A{k}", f"B{k}"}
        winner = frame[(frame["pair_id"] == row["pair_id"]) & (frame["question"] == "overall")]["outcome"].item()
        assert row["chosen"] == f"{winner.upper()}{k}"
        assert row["system_chosen"] == ("moodpo" if winner == "a" else "base")
    assert export_preferences(frame, tmp_path / "trl-help", question="helpfulness") == 2
    with pytest.raises(VoteError, match="no votes on question"):
        export_preferences(frame, tmp_path / "trl-x", question="kindness")
    with pytest.raises(VoteError, match="not a votes frame"):
        export_csv(frame.drop(columns=["outcome"]), tmp_path / "x.csv")


def test_instructions_and_hidden_systems_are_stored_with_the_study(store):
    study = store.create_study("hidden", make_pairs(2), questions=["overall"], objectives=OBJECTIVES,
                               instructions="  Read **both** answers.  ", reveal_systems=False,
                               config={"note": "kept"})
    assert (study.instructions, study.reveal_systems) == ("Read **both** answers.", False)
    assert store.find_study("hidden") == study
    token = store.register_annotator("Ada")
    shown = store.next_pair(study.id, token)
    assert shown.instructions == "Read **both** answers."
    store.record_vote(shown.vote_id, {"overall": "left"})
    assert store.study_of_vote(shown.vote_id) == study
    with pytest.raises(VoteError, match="keeps the systems hidden"):
        store.reveal(shown.vote_id)
    assert store.votes_frame(study.id)["system_a"].tolist() == ["moodpo"]  # the organiser still sees them
    plain = store.create_study("plain", make_pairs(1), questions=["overall"], objectives=OBJECTIVES)
    assert (plain.instructions, plain.reveal_systems) == ("", True)
    for bad in (dict(instructions=3), dict(instructions="x" * 4001), dict(reveal_systems="no")):
        with pytest.raises(VoteError):
            store.create_study("bad", make_pairs(1), questions=["overall"], objectives=OBJECTIVES, **bad)
    assert [s.name for s in store.studies()] == ["hidden", "plain"]


def test_progress_per_annotator_and_coverage_per_pair(store):
    study = store.create_study("cover", make_pairs(3), questions=["overall"], objectives=OBJECTIVES, overlap=2)
    assert store.annotator_progress(study.id).empty
    coverage = store.pair_coverage(study.id)
    assert list(coverage["voted"]) == [0, 0, 0] and not coverage["covered"].any()
    ada, bob = store.register_annotator("Ada"), store.register_annotator("Bob")
    for _ in range(3):
        store.record_vote(store.next_pair(study.id, ada).vote_id, {"overall": "left"})
    store.skip(store.next_pair(study.id, bob).vote_id)
    store.record_vote(store.next_pair(study.id, bob).vote_id, {"overall": "tie"})
    store.next_pair(study.id, bob)  # shown, not answered
    progress = store.annotator_progress(study.id)
    assert list(progress.columns) == ["annotator", "annotator_id", "voted", "skipped", "open", "last"]
    assert progress[["annotator", "voted", "skipped", "open"]].values.tolist() == [["Ada", 3, 0, 0], ["Bob", 1, 1, 1]]
    coverage = store.pair_coverage(study.id)
    assert list(coverage["pair_id"]) == [p.id for p in store.pairs(study.id)]
    assert sorted(coverage["voted"]) == [1, 1, 2] and coverage["skipped"].sum() == 1 and coverage["open"].sum() == 1
    assert coverage["covered"].sum() == 1 and set(coverage["wanted"]) == {2}
    with pytest.raises(VoteError, match="unknown study"):
        store.pair_coverage("nope")
