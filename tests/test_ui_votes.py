"""The Vote tab's handlers as plain functions: blinding, reveal, double submits, progress, admin checks."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from moodpo.errors import MoodpoError
from moodpo.human.votes import MAX_COMMENT_CHARS, VoteStore
from ui import voting
from ui.settings import AppConfig

OBJECTIVES = ("helpfulness", "harmlessness")
QUESTIONS = ("helpfulness", "overall")
PASSWORD = "s3cret-admin"
# Distinctive names and weights: none of them may reach an annotator before the vote.
SYSTEM_A, SYSTEM_B = "SYSTEM-ALPHA", "SYSTEM-<b>BETA</b>"
WEIGHTS_A, WEIGHTS_B = (0.7, 0.3), (0.2, 0.8)


def synthetic_pairs(n: int, *, seed: int = 0) -> list[dict]:
    """n pairs with the fields VoteStore.create_study takes; no model involved."""
    rng = np.random.default_rng(seed)
    return [{"prompt_id": f"p{i:04d}", "prompt": f"Question number {i}?",
             "system_a": SYSTEM_A, "weights_a": WEIGHTS_A, "response_a": f"first answer {i}",
             "system_b": SYSTEM_B, "weights_b": WEIGHTS_B, "response_b": f"second answer {i}",
             "scores_a": dict(zip(OBJECTIVES, rng.normal(size=2).tolist())),
             "scores_b": dict(zip(OBJECTIVES, rng.normal(size=2).tolist()))} for i in range(n)]


@pytest.fixture
def votes(tmp_path):
    return VoteStore(tmp_path / "data")


@pytest.fixture
def study(votes):
    return votes.create_study("pilot", synthetic_pairs(3), questions=QUESTIONS, objectives=OBJECTIVES, overlap=2)


@pytest.fixture
def config(tmp_path):
    return AppConfig(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", configs_dir=tmp_path / "configs",
                     admin_password=PASSWORD)


def vote_on(votes, item, choice="left", comment=""):
    return voting.submit(votes, item["vote_id"], {q["key"]: choice for q in item["questions"]}, comment)


def test_the_annotator_sees_the_pair_blinded(votes, study):
    token = voting.register(votes, "Ada")
    item = voting.next_item(votes, study.id, token)
    assert set(item) == {"vote_id", "study", "instructions", "prompt", "a", "b", "questions", "done", "total"}
    pair = next(p for p in votes.pairs(study.id) if p.prompt == item["prompt"])
    assert {item["a"], item["b"]} == {pair.response_a, pair.response_b}
    assert [q["key"] for q in item["questions"]] == list(QUESTIONS)
    assert item["questions"][0]["text"] == "Which response is more helpful?"
    shown = json.dumps(item)
    for secret in ("SYSTEM", "ALPHA", "BETA", "0.7", "0.3", "0.2", "0.8", "weights", "system", "score"):
        assert secret not in shown
    with pytest.raises(MoodpoError, match="revealed after the vote"):
        voting.reveal(votes, item["vote_id"])
    # a reload shows the same pair, the same sides and the same vote id
    assert voting.next_item(votes, study.id, token) == item


def test_the_reveal_after_the_vote_names_who_wrote_each_side(votes, study):
    token = voting.register(votes, "Ada")
    item = voting.next_item(votes, study.id, token)
    result = vote_on(votes, item, "left")
    assert result["recorded"] is True and result["vote_id"] == item["vote_id"]
    pair = next(p for p in votes.pairs(study.id) if p.prompt == item["prompt"])
    a_is_a = item["a"] == pair.response_a
    assert result["a"] == {"system": SYSTEM_A if a_is_a else SYSTEM_B,
                           "weights": list(WEIGHTS_A if a_is_a else WEIGHTS_B)}
    assert result["b"]["system"] == (SYSTEM_B if a_is_a else SYSTEM_A)
    assert "scores" not in result["a"]  # the reward model's verdict stays out of the annotator's view
    # stored unblinded: "left" was whichever response was on the left
    frame = votes.votes_frame(study.id)
    assert set(frame["outcome"]) == {"a" if a_is_a else "b"} and set(frame["choice"]) == {"left"}
    text = voting.reveal_markdown(result, True, OBJECTIVES)
    assert "&lt;b&gt;BETA&lt;/b&gt;" in text and "<b>" not in text
    assert "Helpfulness 0.70 · Harmlessness 0.30" in text or "Helpfulness 0.20 · Harmlessness 0.80" in text


def test_a_double_submit_records_once(votes, study):
    token = voting.register(votes, "Ada")
    item = voting.next_item(votes, study.id, token)
    first = vote_on(votes, item, "tie", comment="close call")
    again = vote_on(votes, item, "right", comment="changed my mind")
    assert first["recorded"] is True and again["recorded"] is False
    assert again["a"] == first["a"]  # the reveal still answers
    assert votes.count_votes() == 1
    frame = votes.votes_frame(study.id)
    assert len(frame) == len(QUESTIONS) and set(frame["choice"]) == {"tie"}
    assert set(frame["comment"]) == {"close call"}
    assert "already saved" in voting.reveal_markdown(again, again["recorded"])


def test_progress_counts_up_and_nothing_is_left_at_the_end(votes, study):
    token = voting.register(votes, "Ada")
    seen = []
    for expected in range(3):
        item = voting.next_item(votes, study.id, token)
        assert (item["done"], item["total"]) == (expected, 3)
        seen.append(item["prompt"])
        vote_on(votes, item)
    assert len(set(seen)) == 3  # each pair at most once per annotator
    assert voting.next_item(votes, study.id, token) is None
    assert votes.progress(study.id, token) == (3, 3)
    assert voting.progress_text(3, 3) == "Progress: **3 / 3** pairs judged"


def test_skip_moves_on_and_a_skipped_pair_takes_no_vote(votes, study):
    token = voting.register(votes, "Ada")
    item = voting.next_item(votes, study.id, token)
    assert voting.skip(votes, item["vote_id"]) == {"skipped": True, "vote_id": item["vote_id"]}
    voting.skip(votes, item["vote_id"])  # twice is harmless
    following = voting.next_item(votes, study.id, token)
    assert following["prompt"] != item["prompt"] and following["done"] == 1
    with pytest.raises(MoodpoError, match="skipped"):
        vote_on(votes, item)
    assert votes.count_votes() == 0
    vote_on(votes, following)
    with pytest.raises(MoodpoError, match="already recorded"):
        voting.skip(votes, following["vote_id"])


def test_identity(votes):
    token = voting.register(votes, "  Ada  ")
    assert voting.annotator(votes, token) == "Ada"
    assert voting.annotator(votes, "not-a-token") is None and voting.annotator(votes, None) is None
    assert voting.annotator(None, token) is None
    for name, match in [("", "type your name"), ("   ", "type your name"), (None, "type your name"),
                        ("x" * 65, "1 to 64 characters"), ("a\x00b", "control characters"), (7, "must be text")]:
        with pytest.raises(MoodpoError, match=match):
            voting.register(votes, name)


@pytest.mark.parametrize("answers,comment,match", [
    ({"helpfulness": "left", "overall": "A"}, "", "invalid choice"),
    ({"helpfulness": "left", "overall": None}, "", "invalid choice"),
    ({"helpfulness": "left"}, "", "missing"),
    ({"helpfulness": "left", "overall": "tie", "harmlessness": "tie"}, "", "unknown"),
    (["left", "tie"], "", "answers must map"),
    ({"helpfulness": "left", "overall": "tie"}, "x" * (MAX_COMMENT_CHARS + 1), "shorten it"),
    ({"helpfulness": "left", "overall": "tie"}, "x" * 1_000_000, "shorten it"),
    ({"helpfulness": "left", "overall": "tie"}, 5, "comment must be text"),
])
def test_bad_votes_store_nothing(votes, study, answers, comment, match):
    token = voting.register(votes, "Ada")
    item = voting.next_item(votes, study.id, token)
    with pytest.raises(MoodpoError, match=match):
        voting.submit(votes, item["vote_id"], answers, comment)
    assert votes.count_votes() == 0 and votes.votes_frame().empty
    assert vote_on(votes, item)["recorded"] is True  # the pair is still there to vote on


def test_unknown_ids_a_closed_study_and_no_store(votes, study, config):
    token = voting.register(votes, "Ada")
    item = voting.next_item(votes, study.id, token)
    with pytest.raises(MoodpoError, match="unknown vote id"):
        voting.submit(votes, "f" * 32, {"helpfulness": "left", "overall": "tie"})
    with pytest.raises(MoodpoError, match="unknown study"):
        voting.next_item(votes, "nope", token)
    with pytest.raises(MoodpoError, match="unknown annotator"):
        voting.next_item(votes, study.id, "forged-token")
    with pytest.raises(MoodpoError, match="identify yourself"):
        voting.next_item(votes, study.id, None)
    voting.set_open(votes, config, PASSWORD, study.id, False)
    with pytest.raises(MoodpoError, match="closed"):
        vote_on(votes, item)
    with pytest.raises(MoodpoError, match="closed"):
        voting.next_item(votes, study.id, token)
    assert voting.open_studies(votes) == [] and votes.count_votes() == 0
    assert voting.set_open(votes, config, PASSWORD, study.id, True).status == "open"
    assert vote_on(votes, item)["recorded"] is True
    with pytest.raises(MoodpoError, match="no study yet"):
        voting.next_item(None, study.id, token)
    assert voting.open_studies(None) == []


def test_radios_must_all_be_answered():
    assert voting.answers_from(QUESTIONS, ["left", "tie"]) == {"helpfulness": "left", "overall": "tie"}
    with pytest.raises(MoodpoError, match="Which response is better overall"):
        voting.answers_from(QUESTIONS, ["left", None])


def test_open_studies_for_the_picker(votes, study):
    other = votes.create_study("later", synthetic_pairs(2), questions=["overall"], objectives=OBJECTIVES)
    votes.close_study(other.id)
    assert voting.open_studies(votes) == [{"id": study.id, "name": "pilot", "n_pairs": 3,
                                           "questions": list(QUESTIONS)}]
    assert voting.study_choices(voting.open_studies(votes)) == [("pilot · 3 pairs", study.id)]


def test_the_store_opens_lazily(tmp_path):
    lazy = voting.LazyVotes(tmp_path / "data")
    assert lazy.get() is None and not (tmp_path / "data").exists()
    store = lazy.get(create=True)
    assert (tmp_path / "data" / "votes.sqlite").is_file() and lazy.get() is store
    assert voting.LazyVotes(tmp_path / "data").get() is not None  # an existing database is opened


def test_admin_handlers_refuse_a_wrong_or_missing_password(votes, study, config, tmp_path):
    token = voting.register(votes, "Ada")
    vote_on(votes, voting.next_item(votes, study.id, token))
    no_admin = AppConfig(data_dir=config.data_dir, admin_password=None)
    assert no_admin.admin_password is None and AppConfig(admin_password="").admin_password is None
    assert PASSWORD not in repr(config)
    for cfg, password, match in [(config, "wrong", "wrong admin password"), (config, "", "wrong admin password"),
                                 (config, None, "wrong admin password"), (config, PASSWORD + " ", "wrong"),
                                 (no_admin, PASSWORD, "no admin password"), (no_admin, None, "no admin password")]:
        calls = [lambda: voting.admin_studies(votes, cfg, password),
                 lambda: voting.set_open(votes, cfg, password, study.id, False),
                 lambda: voting.results(votes, cfg, password, study.id),
                 lambda: voting.export(votes, cfg, password, study.id, tmp_path / "out"),
                 lambda: voting.create_from_config(votes, cfg, password, "x.yaml"),
                 lambda: voting.live_study(votes, None, cfg, password, "live", "base", "1, 0", "base", "0, 1", 2)]
        for call in calls:
            with pytest.raises(MoodpoError, match=match):
                call()
    assert votes.study(study.id).status == "open" and not (tmp_path / "out").exists()
    assert [s.name for s in votes.studies()] == ["pilot"]


def test_admin_results_and_figure(votes, study, config):
    for name, choice in [("Ada", "left"), ("Bo", "right"), ("Cy", "tie")]:
        token = voting.register(votes, name)
        while (item := voting.next_item(votes, study.id, token)) is not None:
            vote_on(votes, item, choice, comment="<script>alert(1)</script>" if name == "Bo" else "")
    assert [s.name for s in voting.admin_studies(votes, config, PASSWORD)] == ["pilot"]
    tables = voting.results(votes, config, PASSWORD, study.id)
    assert set(voting.REPORT_LABELS) == set(tables)
    assert set(tables["win_rates"]["question"]) == set(QUESTIONS)
    assert len(tables["bradley_terry"]) == 2 * len(QUESTIONS)
    assert list(tables["comments"]["comment"].unique()) == ["<script>alert(1)</script>"]  # text, shown as text
    figure = voting.results_figure(tables)
    assert isinstance(figure, go.Figure) and len(figure.data) >= 2
    labels = [str(y) for trace in figure.data for y in trace.y]
    assert any("SYSTEM-&lt;b&gt;BETA" in y for y in labels) and not any("<b>" in y for y in labels)
    empty = votes.create_study("empty", synthetic_pairs(1), questions=["overall"], objectives=OBJECTIVES)
    tables = voting.results(votes, config, PASSWORD, empty.id)
    assert tables["comments"].empty
    assert voting.results_figure(tables).layout.annotations[0].text == "No votes yet"
    table = voting.studies_table(votes.studies())
    assert list(table["name"]) == ["pilot", "empty"] and list(table["pairs"]) == [3, 1]


def test_admin_exports_csv_jsonl_and_trl_datasets(votes, study, config, tmp_path):
    import datasets

    for name, choice in [("Ada", "left"), ("Bo", "tie")]:
        token = voting.register(votes, name)
        while (item := voting.next_item(votes, study.id, token)) is not None:
            vote_on(votes, item, choice)
    files = voting.export(votes, config, PASSWORD, study.id, tmp_path / "out")
    assert [p.name for p in files] == ["votes-pilot.csv", "votes-pilot.jsonl", "votes-pilot-trl.zip"]
    assert len(pd.read_csv(files[0])) == 2 * 3 * len(QUESTIONS)
    assert len(files[1].read_text().splitlines()) == 2 * 3 * len(QUESTIONS)
    with zipfile.ZipFile(files[2]) as archive:
        archive.extractall(tmp_path / "unzipped")
        assert {n.split("/")[0] for n in archive.namelist()} == set(QUESTIONS)
    overall = datasets.load_from_disk(str(tmp_path / "unzipped" / "overall"))
    assert len(overall) == 3  # Bo's ties are left out
    assert {"prompt", "chosen", "rejected"} <= set(overall.column_names)
    empty = votes.create_study("empty", synthetic_pairs(1), questions=["overall"], objectives=OBJECTIVES)
    with pytest.raises(MoodpoError, match="no votes to export"):
        voting.export(votes, config, PASSWORD, empty.id, tmp_path / "out2")
    with pytest.raises(MoodpoError, match="choose a study"):
        voting.export(votes, config, PASSWORD, None, tmp_path / "out2")


def test_study_configs_stay_under_configs_studies(config):
    folder = config.configs_dir / voting.STUDIES_FOLDER
    folder.mkdir(parents=True)
    (folder / "demo.yaml").write_text("name: demo\n")
    (config.configs_dir / "secret.yaml").write_text("name: x\n")
    assert voting.study_configs(config) == ["demo.yaml"]
    assert voting.study_config_path(config, "demo.yaml") == (folder / "demo.yaml").resolve()
    for bad in ["../secret.yaml", "/etc/passwd.yaml", "nope.yaml", "demo", "", None]:
        with pytest.raises(MoodpoError):
            voting.study_config_path(config, bad)


def test_create_from_config_runs_make_study_in_a_thread(votes, config, monkeypatch):
    import threading

    import moodpo.human.study

    folder = config.configs_dir / voting.STUDIES_FOLDER
    folder.mkdir(parents=True)
    (folder / "demo.yaml").write_text(
        "name: from-yaml\nobjectives: [helpfulness, harmlessness]\n"
        "comparisons:\n  - a: {policy: base, weights: [1, 0]}\n    b: {policy: base, weights: [0, 1]}\n")
    calls = []

    def fake_make_study(spec, data_dir, *, runs_dir=None, progress=True):
        calls.append((spec.name, threading.current_thread().name, progress, runs_dir))
        return VoteStore(data_dir).create_study(spec.name, synthetic_pairs(2), questions=spec.questions,
                                                objectives=spec.objectives)

    monkeypatch.setattr(moodpo.human.study, "make_study", fake_make_study)
    waited = []
    made = voting.create_from_config(votes, config, PASSWORD, "demo.yaml", "  renamed  ", on_wait=waited.append)
    assert made.name == "renamed" and made.n_pairs == 2
    assert calls == [("renamed", "moodpo-study", False, None)]  # policy paths as the CLI reads them
    with pytest.raises(MoodpoError, match="exists already"):
        voting.create_from_config(votes, config, PASSWORD, "demo.yaml", "renamed")
    assert len(calls) == 1  # refused before generating


def test_run_in_thread_reports_waiting_and_reraises():
    import time

    waited = []
    assert voting.run_in_thread(lambda: time.sleep(0.25) or 7, waited.append, every=0.05) == 7
    assert waited and waited == sorted(waited)
    with pytest.raises(MoodpoError, match="boom"):
        voting.run_in_thread(lambda: (_ for _ in ()).throw(MoodpoError("boom")))


class FakePolicies:
    """Stands in for the app's PolicyStore: objectives by value, no model."""

    def __init__(self, objectives):
        self.by_value = objectives

    def objectives(self, value):
        return self.by_value[value]

    def get(self, value):
        return value


def test_live_pairs_create_a_study_then_add_to_it(votes, config, monkeypatch):
    import moodpo.human.study

    seen = []

    def fake_generate_pairs(policy_a, weights_a, policy_b, weights_b, prompts, objectives, **kwargs):
        seen.append((policy_a, weights_a, policy_b, weights_b, len(prompts), kwargs["seed"]))
        return [{"prompt_id": p.id, "prompt": p.text, "system_a": kwargs["name_a"], "weights_a": weights_a,
                 "response_a": "one", "system_b": kwargs["name_b"], "weights_b": weights_b, "response_b": "two",
                 "scores_a": dict.fromkeys(objectives, 0.1), "scores_b": dict.fromkeys(objectives, 0.2)}
                for p in prompts]

    monkeypatch.setattr(moodpo.human.study, "generate_pairs", fake_generate_pairs)
    policies = FakePolicies({"base": OBJECTIVES, "run": OBJECTIVES, "other": ("helpfulness", "conciseness")})
    made, added = voting.live_study(votes, policies, config, PASSWORD, "live", "base", "0.7, 0.3", "run", "1, 1", 3)
    assert added == 3 and made.n_pairs == 3 and made.questions == (*OBJECTIVES, "overall")
    assert seen[0] == ("base", [0.7, 0.3], "run", [0.5, 0.5], 3, 0)
    made, added = voting.live_study(votes, policies, config, PASSWORD, "live", "base", "1 0", "run", "0 1", 2, 5)
    assert added == 2 and made.n_pairs == 5 and len(votes.studies()) == 1
    for args, match in [(("", "base", "1, 0", "run", "0, 1", 2), "name the study"),
                        (("live", "base", "1, 0", "other", "0, 1", 2), "different objectives"),
                        (("live", "base", "1, x", "run", "0, 1", 2), "weights must be numbers"),
                        (("live", "base", "0, 0", "run", "0, 1", 2), "must not all be zero"),
                        (("live", "base", "1", "run", "0, 1", 2), "expected 2 weights"),
                        (("live", "base", "1, 0", "run", "0, 1", 0), "from 1 to"),
                        (("live", "base", "1, 0", "run", "0, 1", 2.5), "whole number")]:
        with pytest.raises(MoodpoError, match=match):
            voting.live_study(votes, policies, config, PASSWORD, *args)
    assert len(seen) == 2 and votes.study(made.id).n_pairs == 5


def test_a_studys_instructions_come_with_each_pair(votes):
    study = votes.create_study("guided", synthetic_pairs(2), questions=QUESTIONS, objectives=OBJECTIVES,
                               instructions="You are a **nurse**; judge for patients.")
    token = voting.register(votes, "Ada")
    first = voting.next_item(votes, study.id, token)
    assert first["instructions"] == "You are a **nurse**; judge for patients."
    vote_on(votes, first)
    assert voting.next_item(votes, study.id, token)["instructions"] == first["instructions"]


def test_a_study_can_keep_the_systems_hidden_after_each_vote(votes, config):
    study = votes.create_study("hidden", synthetic_pairs(2), questions=QUESTIONS, objectives=OBJECTIVES,
                               reveal_systems=False)
    token = voting.register(votes, "Ada")
    item = voting.next_item(votes, study.id, token)
    result = vote_on(votes, item)
    assert result == {"recorded": True, "vote_id": item["vote_id"]}
    assert vote_on(votes, item) == {"recorded": False, "vote_id": item["vote_id"]}
    with pytest.raises(MoodpoError, match="keeps the systems hidden"):
        voting.reveal(votes, item["vote_id"])
    shown = voting.reveal_markdown(result, result["recorded"], OBJECTIVES)
    assert "hidden" in shown and "SYSTEM" not in shown and "0.7" not in shown
    # the organiser's results still name the systems
    assert SYSTEM_A in " ".join(voting.results(votes, config, PASSWORD, study.id)["win_rates"]["system"])
    assert voting.studies_table(votes.studies())["reveals systems"].tolist() == ["no"]


def test_an_invite_link_names_an_open_study(votes, study):
    assert voting.invited_study(votes, "pilot") == (study.id, "")
    assert voting.invited_study(votes, study.id) == (study.id, "")
    assert voting.invited_study(votes, None) == (None, "") and voting.invited_study(votes, " ") == (None, "")
    missing, why = voting.invited_study(votes, "<b>nope</b>")
    assert missing is None and "does not exist" in why and "<b>" not in why
    assert voting.invited_study(None, "pilot")[0] is None  # no database yet
    votes.close_study(study.id)
    assert voting.invited_study(votes, "pilot") == (None, "Study **pilot** is closed; it takes no more votes.")
    assert voting.invite_link("https://x.hf.space/?__theme=dark#vote", "my study") == \
        "https://x.hf.space/?study=my+study"
    assert voting.invite_link(None, "pilot") == "?study=pilot"
    table = voting.studies_table(votes.studies(), "http://127.0.0.1:7860/")
    assert table["invite link"].tolist() == ["http://127.0.0.1:7860/?study=pilot"]


def _vote_tab(config, votes):
    import gradio as gr

    from ui.policies import PolicyStore
    from ui.voting_tab import build_vote_tab

    with gr.Blocks() as demo, gr.Tabs():
        tab = build_vote_tab(config, PolicyStore(config), votes, generation_queue="generation")
    ids = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    return demo, tab, ids


def test_the_page_load_opens_the_invited_study_or_says_why_not(votes, config):
    first = votes.create_study("first", synthetic_pairs(1), questions=QUESTIONS, objectives=OBJECTIVES)
    second = votes.create_study("second", synthetic_pairs(1), questions=QUESTIONS, objectives=OBJECTIVES,
                                instructions="Judge as a *teacher*.")
    token = voting.register(votes, "Ada")
    demo, tab, ids = _vote_tab(config, votes)
    picker, status, box = ids["vote-study"], ids["vote-status"], ids["vote-instructions"]
    assert tab.on_load(token)[picker]["value"] == first.id  # no invite: the first open study
    out = tab.on_load(token, "second")
    assert out[picker]["value"] == second.id
    assert out[box] == {"__type__": "update", "value": "Judge as a *teacher*.", "visible": True}
    votes.close_study(second.id)
    out = tab.on_load(token, "second")
    assert out[picker]["value"] is None and "closed" in out[status]  # not another study's pair instead
    demo.close()


def test_an_invite_link_selects_the_vote_tab_on_page_load(votes, study, config):
    import gradio as gr

    from ui import build_demo

    demo = build_demo(config, votes=votes)
    [load] = [fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", None) == "on_load"
              and any(isinstance(o, gr.Tabs) for o in fn.outputs)]
    tabs = next(o for o in load.outputs if isinstance(o, gr.Tabs))
    invited = load.fn(None, gr.Request(query_params={"study": "pilot"}, headers={}))
    assert invited[tabs].selected == "vote"
    assert any(isinstance(v, dict) and v.get("value") == study.id for v in invited.values())
    assert tabs not in load.fn(None, gr.Request(query_params={}, headers={}))  # no invite: the first tab stays
    demo.close()


def test_admin_progress_per_annotator_and_coverage_per_pair(votes, study, config):
    with pytest.raises(MoodpoError, match="wrong admin password"):
        voting.progress_tables(votes, config, "guess", study.id)
    with pytest.raises(MoodpoError, match="choose a study"):
        voting.progress_tables(votes, config, PASSWORD, None)
    summary, annotators, coverage = voting.progress_tables(votes, config, PASSWORD, study.id)
    assert "0 / 3 pairs" in summary and annotators.empty and len(coverage) == 3
    for name in ("Ada", "Bob"):
        vote_on(votes, voting.next_item(votes, study.id, voting.register(votes, name)))
    summary, annotators, coverage = voting.progress_tables(votes, config, PASSWORD, study.id)
    assert annotators["voted"].tolist() == [1, 1] and set(annotators["annotator"]) == {"Ada", "Bob"}
    assert coverage["voted"].sum() == 2 and "2 votes" in summary and "from 2 annotators" in summary


def _elem_ids(demo) -> set[str]:
    return {getattr(b, "elem_id", None) or "" for b in demo.blocks.values()}


@pytest.mark.parametrize("password", [None, PASSWORD])
def test_admin_controls_are_built_only_with_an_admin_password(tmp_path, password):
    from ui import build_demo
    from ui.voting_tab import VOTE_CONCURRENCY, VOTE_QUEUE

    config = AppConfig(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", configs_dir=tmp_path / "configs",
                       admin_password=password)
    demo = build_demo(config)
    ids = _elem_ids(demo)
    assert {"vote-study", "vote-a", "vote-b", "vote-submit", "vote-skip", "vote-next"} <= ids
    admin = {i for i in ids if i.startswith("vote-admin")}
    passwords = [b for b in demo.blocks.values() if getattr(b, "type", None) == "password"]
    if password is None:
        assert admin == set() and passwords == []
    else:
        assert {"vote-admin", "vote-admin-password", "vote-admin-results", "vote-admin-files",
                "vote-admin-progress", "vote-admin-annotators", "vote-admin-coverage"} <= admin
        assert len(passwords) == 1
    assert not (tmp_path / "data").exists()  # building the app writes no database
    fns = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    for name in ("vote_studies", "vote_register", "vote_next", "vote_submit", "vote_skip"):
        assert fns[name].concurrency_id == VOTE_QUEUE and fns[name].concurrency_limit == VOTE_CONCURRENCY
    assert fns["generate"].concurrency_id == "generation"
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public == {"policies", "generate", "compare", "pareto", "samples", "vote_studies", "vote_register",
                      "vote_next", "vote_submit", "vote_skip"}
    demo.close()
