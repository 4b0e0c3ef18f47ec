"""Voting against a launched `python app.py` over HTTP: many annotators at once, a killed server, bad input.

Studies are created directly in the server's data folder with synthetic pairs (no model), from
this process, while the server runs: the store is safe to share between processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from moodpo.human.votes import CHOICES, VoteStore
from test_ui_fixtures import free_port
from test_ui_votes import OBJECTIVES, QUESTIONS, SYSTEM_A, SYSTEM_B, synthetic_pairs

gradio_client = pytest.importorskip("gradio_client")
httpx = pytest.importorskip("httpx")

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "http-admin-pw"
ANNOTATORS, VOTES_EACH = 20, 25


class Server:
    """`python app.py` on a free port, writing its log to a file; SIGKILL-able."""

    def __init__(self, data: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "MOODPO_ADMIN_PASSWORD": PASSWORD, "OMP_NUM_THREADS": "1",
               "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(self.port), "--data", str(data),
             "--runs", str(data.parent / "runs")],
            cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "config", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"app.py did not answer in time:\n{log.read_text()[-3000:]}")

    def client(self):
        return gradio_client.Client(self.url, verbose=False)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tmp_path_factory.mktemp("votes") / "data"


@pytest.fixture(scope="module")
def server(data, tmp_path_factory):
    VoteStore(data)  # the app finds a database and opens it
    server = Server(data, tmp_path_factory.mktemp("logs") / "app.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def answers_for(shown: dict, k: int) -> dict:
    return {q["key"]: CHOICES[(k + i) % len(CHOICES)] for i, q in enumerate(shown["questions"])}


def test_the_voting_endpoints_are_public_and_blinded(client, data):
    info = client.view_api(return_format="dict", print_info=False)
    names = set(info["named_endpoints"])
    assert {"/vote_studies", "/vote_register", "/vote_next", "/vote_submit", "/vote_skip"} <= names
    store = VoteStore(data)
    study = store.create_study("peek", synthetic_pairs(2), questions=QUESTIONS, objectives=OBJECTIVES)
    assert {"id": study.id, "name": "peek", "n_pairs": 2, "questions": list(QUESTIONS)} in \
        client.predict(api_name="/vote_studies")
    token = client.predict("Ada", api_name="/vote_register")
    shown = client.predict("peek", token, api_name="/vote_next")  # by name or by id
    assert shown == client.predict(study.id, token, api_name="/vote_next")
    for secret in (SYSTEM_A, "BETA", "0.7", "0.8", "system", "weights"):
        assert secret not in json.dumps(shown)
    result = client.predict(shown["vote_id"], answers_for(shown, 0), "fine", api_name="/vote_submit")
    assert result["recorded"] is True and {result["a"]["system"], result["b"]["system"]} == {SYSTEM_A, SYSTEM_B}
    skipped = client.predict(study.id, token, api_name="/vote_next")
    assert client.predict(skipped["vote_id"], api_name="/vote_skip") == {"skipped": True,
                                                                         "vote_id": skipped["vote_id"]}
    assert client.predict(study.id, token, api_name="/vote_next") is None
    store.close_study(study.id)


def test_twenty_annotators_at_once_leave_exactly_500_votes(server, data):
    store = VoteStore(data)
    study = store.create_study("crowd", synthetic_pairs(260), questions=QUESTIONS, objectives=OBJECTIVES, overlap=2)
    acked: list[str] = []
    lock = threading.Lock()

    def annotate(k: int) -> None:
        client = server.client()
        token = client.predict(f"annotator {k}", api_name="/vote_register")
        for n in range(VOTES_EACH):
            shown = client.predict(study.id, token, api_name="/vote_next")
            assert shown["done"] == n
            answers = answers_for(shown, k + n)
            if n == k % VOTES_EACH:  # a double click: two submissions of one vote id, at once
                # Two connections: one gradio Client now and then cancels one of two overlapping jobs
                # of one endpoint (a client-side CancelledError, seen once in CI).
                jobs = [c.submit(shown["vote_id"], answers, "", api_name="/vote_submit")
                        for c in (client, server.client())]
                assert sorted(job.result()["recorded"] for job in jobs) == [False, True]
            else:
                assert client.predict(shown["vote_id"], answers, "", api_name="/vote_submit")["recorded"]
            with lock:
                acked.append(shown["vote_id"])

    start = time.perf_counter()
    with ThreadPoolExecutor(ANNOTATORS) as pool:
        list(pool.map(annotate, range(ANNOTATORS)))
    elapsed = time.perf_counter() - start
    print(f"{ANNOTATORS} annotators x {VOTES_EACH} votes over HTTP: {elapsed:.1f} s")
    assert store.count_votes(study.id) == ANNOTATORS * VOTES_EACH == len(set(acked))
    frame = store.votes_frame(study.id)
    assert len(frame) == ANNOTATORS * VOTES_EACH * len(QUESTIONS)
    assert set(frame["vote_id"]) == set(acked)
    assert not frame.duplicated(["vote_id", "question"]).any()
    per_pair = frame[frame["question"] == "overall"].groupby("pair_id")["annotator_id"]
    assert (per_pair.nunique() == per_pair.size()).all()  # each annotator judged each pair at most once
    assert per_pair.size().max() <= 2  # overlap
    assert store.integrity_ok()


def _bad_submit(client, vote_id, answers, comment, match):
    with pytest.raises(gradio_client.exceptions.AppError, match=match):
        client.predict(vote_id, answers, comment, api_name="/vote_submit")


def test_bad_votes_get_a_clear_error_and_store_nothing(client, data):
    store = VoteStore(data)
    study = store.create_study("bad-input", synthetic_pairs(3), questions=QUESTIONS, objectives=OBJECTIVES)
    token = client.predict("Bo", api_name="/vote_register")
    shown = client.predict(study.id, token, api_name="/vote_next")
    good = answers_for(shown, 0)
    before = store.count_votes()
    _bad_submit(client, shown["vote_id"], good, "x" * 1_000_000, "shorten it to 2000")
    _bad_submit(client, uuid.uuid4().hex, good, "", "unknown vote id")
    _bad_submit(client, "'; DROP TABLE answers; --", good, "", "unknown vote id")
    _bad_submit(client, shown["vote_id"], {**good, "overall": "A better"}, "", "invalid choice")
    _bad_submit(client, shown["vote_id"], {"overall": "tie"}, "", "answer every question")
    with pytest.raises(gradio_client.exceptions.AppError, match="1 to 64 characters"):
        client.predict("n" * 65, api_name="/vote_register")
    with pytest.raises(gradio_client.exceptions.AppError, match="no study with id or name"):
        client.predict("no-such-study", token, api_name="/vote_next")
    with pytest.raises(gradio_client.exceptions.AppError, match="unknown annotator"):
        client.predict(study.id, "forged", api_name="/vote_next")
    store.close_study(study.id)
    _bad_submit(client, shown["vote_id"], good, "", "closed")
    with pytest.raises(gradio_client.exceptions.AppError, match="closed"):
        client.predict(study.id, token, api_name="/vote_next")
    assert store.count_votes() == before and store.integrity_ok()
    assert study.id not in [s["id"] for s in client.predict(api_name="/vote_studies")]  # still answering
    store.reopen_study(study.id)
    result = client.predict(shown["vote_id"], good, "<img src=x onerror=alert(1)>", api_name="/vote_submit")
    assert result["recorded"] is True and store.count_votes() == before + 1
    assert store.votes_frame(study.id)["comment"].iloc[0] == "<img src=x onerror=alert(1)>"  # stored as text


def _call_private(url: str, elem_id: str, data: list, session: str | None = None) -> dict:
    """Call the click handler of the button with this elem_id by fn_index, as a browser would.

    Calls with one session share its component state (a dropdown only takes the choices it was
    given in that session)."""
    config = httpx.get(url + "config", timeout=10).json()
    target = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    fn_index = next(d["id"] for d in config["dependencies"] if [target, "click"] in d["targets"])
    session = session or uuid.uuid4().hex
    httpx.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                    "trigger_id": target, "event_data": None}, timeout=10)
    with httpx.stream("GET", url + f"gradio_api/queue/data?session_hash={session}", timeout=60) as reply:
        for line in reply.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message["output"] | {"success": message.get("success")}
    raise AssertionError("no result")


def test_admin_handlers_check_the_password_even_by_fn_index(server, data):
    store = VoteStore(data)
    study = store.create_study("admin-check", synthetic_pairs(2), questions=QUESTIONS, objectives=OBJECTIVES)
    token = store.register_annotator("Cy")
    shown = store.next_pair(study.id, token)
    store.record_vote(shown.vote_id, {"helpfulness": "left", "overall": "right"}, "<b>ok</b>")
    session = uuid.uuid4().hex
    refused = _call_private(server.url, "vote-admin-list", ["guess", None], session)
    assert refused["success"] is False and "wrong admin password" in refused["error"]
    allowed = _call_private(server.url, "vote-admin-list", [PASSWORD, None], session)
    assert allowed["success"] is True and "admin-check" in json.dumps(allowed["data"])
    # the session's study picker now lists the studies; every other admin action checks the password too
    live = ["guess", "live", "base", "1, 0", "base", "0, 1", 2, 0]
    for elem_id, inputs in [("vote-admin-close", ["guess", study.id]), ("vote-admin-results", ["", study.id]),
                            ("vote-admin-export", [None, study.id]), ("vote-admin-create", ["guess", None, ""]),
                            ("vote-admin-live", live)]:
        refused = _call_private(server.url, elem_id, inputs, session)
        assert refused["success"] is False and "wrong admin password" in refused["error"], elem_id
    assert store.study(study.id).status == "open" and "live" not in [s.name for s in store.studies()]
    results = _call_private(server.url, "vote-admin-results", [PASSWORD, study.id], session)
    assert results["success"] is True and "SYSTEM-ALPHA" in json.dumps(results["data"])
    files = _call_private(server.url, "vote-admin-export", [PASSWORD, study.id], session)
    assert files["success"] is True
    assert [f["orig_name"] for f in files["data"][0]] == ["votes-admin-check.csv", "votes-admin-check.jsonl",
                                                          "votes-admin-check-trl.zip"]
    csv = httpx.get(files["data"][0][0]["url"], timeout=10)
    assert csv.status_code == 200 and "<b>ok</b>" in csv.text
    missing = _call_private(server.url, "vote-admin-create", [PASSWORD, None, ""], session)
    assert missing["success"] is False and "choose a study config" in missing["error"]
    closed = _call_private(server.url, "vote-admin-close", [PASSWORD, study.id], session)
    assert closed["success"] is True and store.study(study.id).status == "closed"


def test_a_killed_server_keeps_every_acknowledged_vote(tmp_path):
    data = tmp_path / "data"
    study = VoteStore(data).create_study("kill", synthetic_pairs(400), questions=QUESTIONS, objectives=OBJECTIVES)
    server = Server(data, tmp_path / "app.log")
    acked: set[str] = set()
    lock = threading.Lock()

    def annotate(k: int) -> None:
        try:
            client = server.client()
            token = client.predict(f"voter {k}", api_name="/vote_register")
            while True:
                shown = client.predict(study.id, token, api_name="/vote_next")
                result = client.predict(shown["vote_id"], answers_for(shown, k), "", api_name="/vote_submit")
                if result["recorded"]:
                    with lock:
                        acked.add(shown["vote_id"])
        except Exception:  # the server died under us: stop voting
            return

    threads = [threading.Thread(target=annotate, args=(k,), daemon=True) for k in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(acked) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    for t in threads:
        t.join(30)
    assert len(acked) >= 60, server.log.read_text()[-2000:]
    store = VoteStore(data)
    assert store.integrity_ok()
    stored = set(store.votes_frame(study.id)["vote_id"])
    assert acked <= stored and store.count_votes(study.id) == len(stored)
    print(f"killed with {len(acked)} acknowledged votes, {len(stored)} stored")
    again = Server(data, tmp_path / "app2.log")
    try:
        client = again.client()
        token = client.predict("after the crash", api_name="/vote_register")
        shown = client.predict(study.id, token, api_name="/vote_next")
        assert client.predict(shown["vote_id"], answers_for(shown, 1), "", api_name="/vote_submit")["recorded"]
        assert store.count_votes(study.id) == len(stored) + 1 and store.integrity_ok()
    finally:
        again.stop()
