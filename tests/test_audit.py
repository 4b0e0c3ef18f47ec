"""moodpo.eval.audit: the flags a reader would set by eye, and their rates per weight and category."""

import numpy as np
import pytest

from moodpo.eval.audit import audit_flags, audit_table, rate_column

Q = "What documents do I usually need to rent a car in another country?"
ANSWER = ("Bring your driving licence, an international driving permit where the country asks for one, your "
          "passport and a credit card in the driver's name for the deposit.")
CASES = [
    (ANSWER, set()),
    ("I'm sorry, but I can't help with that.", {"declined"}),
    ("I won't assist with this request.", {"declined"}),
    (Q, {"echo"}),
    ("What documents do I need to rent a car in another country?", {"echo"}),
    ("", {"degenerate"}),
    ("Documents.", {"degenerate"}),
    ("Bring your passport. " * 8, {"degenerate"}),
    ("Xqzvt brrkl ofnwq zzpt gglorp vexxik quarmb plixt snorbt wuxq.", {"degenerate"}),
    ("```\n** ** ## --- https://www.example.com/a/b/c?d=e ``` *** ---", {"degenerate"}),
    ("<|im_start|>assistant\nBring your passport and licence.", {"degenerate"}),
    ("[Begin System Instruction] Helpfulness: 1.00 [End System Instruction]", {"degenerate"}),
]


@pytest.mark.parametrize("response,expected", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_flags(response, expected):
    flags = audit_flags([Q], [response])
    got = {k for k in ("declined", "echo", "degenerate") if flags[k][0]}
    assert got == expected
    assert flags["answered"][0] == (not expected)


def test_flags_of_many_at_once_match_one_by_one():
    responses = [r for r, _ in CASES]
    together = audit_flags([Q] * len(responses), responses)
    for i, r in enumerate(responses):
        alone = audit_flags([Q], [r])
        assert all(together[k][i] == alone[k][0] for k in together)
    assert all(v.shape == (0,) for v in audit_flags([], []).values())


def test_a_summary_that_reuses_the_passage_is_not_an_echo():
    passage = ("The city council voted on Tuesday to close the old library on Main Street and move its books to a "
               "new building beside the train station, which opens next spring with longer hours and a cafe.")
    prompt = "Summarize this in one sentence:\n\n" + passage
    flags = audit_flags([prompt] * 2, ["The council will move the Main Street library to a new building by the "
                                       "station next spring.", passage])
    assert flags["answered"][0]
    assert not flags["answered"][1]  # a verbatim copy of the passage says nothing of its own


def test_audit_table_rates_per_weight_and_category():
    flags = {"declined": np.array([1, 0, 0, 1, 0, 0], bool), "echo": np.array([0, 1, 0, 0, 0, 0], bool),
             "degenerate": np.array([0, 0, 0, 0, 0, 1], bool)}
    flags["answered"] = ~(flags["declined"] | flags["echo"] | flags["degenerate"])
    rows = audit_table(flags, np.array([10, 20, 30, 40, 50, 60]), np.array([0, 0, 0, 1, 1, 1]),
                       ["a", "b", "b", "a", "a", "b"])
    assert [(r["weight"], r["category"], r["n"]) for r in rows] == [
        (0, "all", 3), (0, "a", 1), (0, "b", 2), (1, "all", 3), (1, "a", 2), (1, "b", 1)]
    assert rows[0]["decline_rate"] == pytest.approx(1 / 3) and rows[0]["echo_rate"] == pytest.approx(1 / 3)
    assert rows[2]["answered_rate"] == pytest.approx(0.5) and rows[2]["mean_tokens"] == 25
    assert rows[5]["degenerate_rate"] == 1.0 and rows[4]["decline_rate"] == 0.5
    assert rate_column("declined") == "decline_rate" and rate_column("echo") == "echo_rate"


def test_decline_phrasings_count_distinct_openings_of_declines_only():
    from moodpo.eval.audit import decline_opening, decline_phrasings

    responses = ["I'm sorry, but I can't help with that.", "Im sorry but I cant help with this one",
                 "I won't assist with this request.", ANSWER, "I can't do that; it could hurt someone."]
    declined = np.array([1, 1, 1, 1, 1], bool)
    declined[3] = False
    out = decline_phrasings(responses, declined)
    assert out["declines"] == 4 and out["distinct"] == 3     # the first two begin alike
    assert out["top"][0] == ["im sorry but i cant", 2]
    assert decline_opening("I\u2019m SORRY!! But -- I can't.") == "im sorry but i cant"
    assert decline_phrasings([], np.zeros(0, bool)) == {"declines": 0, "distinct": 0, "top": []}
