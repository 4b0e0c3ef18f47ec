import re
from collections import Counter

import pytest

from moodpo.objectives import hacksuite
from moodpo.objectives.hacksuite import (
    ANSWER_KINDS,
    CASES,
    CATEGORIES,
    COMMON_KINDS,
    HARMFUL_KINDS,
    LIMITS,
    NOT_HARMFUL,
    ORDERINGS,
    REFUSAL_KINDS,
    ROLES,
    format_report,
    gibberish,
    run_suite,
    shuffle_words,
    summarize,
    truncate,
)

V1 = {"helpfulness": "helpfulness@v1", "harmlessness": "harmlessness@v1", "conciseness": "conciseness@v1"}


def words(text):
    return text.split()


def cases(*categories):
    return [c for c in CASES if c.category in categories]


# Structure: nothing here scores a text.


def test_every_category_has_its_prompts_and_ids_are_unique():
    assert Counter(c.category for c in CASES) == {"everyday": 4, "summarize": 2, "safety": 3, "borderline": 2, "harmful": 3}
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.prompt for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_prompt_has_the_kinds_of_its_category(case):
    expected = set(COMMON_KINDS) | set(HARMFUL_KINDS if case.category == "harmful" else ANSWER_KINDS)
    assert set(case.responses) == expected
    texts = list(case.responses.values())
    assert len(set(texts)) == len(texts), "two kinds share a text, so a score could not tell them apart"


def test_at_least_five_refusal_phrasings_the_same_for_every_prompt():
    assert len(REFUSAL_KINDS) >= 5
    phrasings = {c.responses[k] for c in CASES for k in REFUSAL_KINDS}
    assert len(phrasings) == len(REFUSAL_KINDS)


@pytest.mark.parametrize("case", cases(*NOT_HARMFUL), ids=lambda c: c.id)
def test_answer_lengths(case):
    r = case.responses
    assert 60 <= len(words(r["genuine"])) <= 120
    assert 15 <= len(words(r["short_genuine"])) <= 35
    assert r["short_genuine"] in r["filler"] and len(r["filler"]) >= len(r["genuine"])
    assert r["genuine"] in r["genuine_filler"] and len(r["genuine_filler"]) > len(r["genuine"])
    assert "https://www.example.com/" in r["filler"] and "```" in r["filler"] and "**" in r["filler"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_degenerate_kinds(case):
    r = case.responses
    assert r["empty"] == ""
    assert len(words(r["one_word"])) == 1
    assert 60 <= len(words(r["off_topic"])) <= 100
    assert case.prompt in r["restated"] and len(r["restated"]) <= len(case.prompt) + 20
    assert case.prompt not in r["paraphrased"]
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", r["repetition"]) if s]
    assert len(sentences) >= 8 and len(set(sentences)) == 1
    assert "https://www.example.com/" in r["markup_only"] and not re.search(r"\w", re.sub(r"https://\S+", "", r["markup_only"]))


def test_summarize_prompts_are_an_instruction_a_blank_line_and_a_passage():
    for case in cases("summarize"):
        instruction, blank, passage = case.prompt.partition("\n\n")
        assert blank and "ummar" in instruction and "\n" not in instruction
        assert 90 <= len(words(passage)) <= 130


@pytest.mark.parametrize("case", cases("harmful"), ids=lambda c: c.id)
def test_harmful_prompts_have_compliance_and_a_redirect_but_no_answer(case):
    r = case.responses
    assert r["harmful_compliance"].startswith("Sure")
    assert r["safe_redirect"].startswith("I can't")
    first_sentence = re.split(r"(?<=[.!?])\s", r["harmful_compliance"])[0]
    assert first_sentence in r["filler"] and len(r["filler"]) >= len(r["harmful_compliance"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_derived_kinds_are_deterministic(case):
    r = case.responses
    assert r["shuffled"] == shuffle_words(case.prompt, case.id)
    assert sorted(words(r["shuffled"])) == sorted(words(case.prompt)) and r["shuffled"] != " ".join(words(case.prompt))
    answer = r.get("genuine", r.get("harmful_compliance"))
    assert r["gibberish"] == gibberish(len(words(answer)), case.id)
    assert len(words(r["gibberish"])) == len(words(answer))
    assert re.fullmatch(r"[A-Za-z. ]+", r["gibberish"])
    assert not set(words(r["gibberish"].lower())) & set(words(answer.lower()))


@pytest.mark.parametrize("case", cases(*NOT_HARMFUL), ids=lambda c: c.id)
def test_truncated_is_the_first_third_of_the_answer_cut_mid_sentence(case):
    genuine, truncated = case.responses["genuine"], case.responses["truncated"]
    assert truncated == truncate(genuine) and genuine.startswith(truncated)
    assert 0.3 <= len(words(truncated)) / len(words(genuine)) <= 0.45
    assert truncated[-1] not in ".!?;:"


def test_orderings_name_real_roles_kinds_and_categories():
    for o in ORDERINGS:
        assert o.objective in ROLES and o.margin >= 0 and o.reason
        assert o.categories and set(o.categories) <= set(CATEGORIES)
        for case in cases(*o.categories):
            assert o.better in case.responses and o.worse in case.responses, (o, case.id)
    keys = [(o.objective, o.better, o.worse, o.margin) for o in ORDERINGS]
    assert len(set(keys)) == len(keys)


def test_the_orderings_the_brief_asks_for_are_there():
    have = {(o.objective, o.better, o.worse): o for o in ORDERINGS}
    for worse in ("restated", "paraphrased", "shuffled", "empty", "one_word", "off_topic", "filler",
                  "repetition", "gibberish", "truncated", *REFUSAL_KINDS):
        assert have["helpfulness", "genuine", worse].categories == NOT_HARMFUL
    assert have["helpfulness", "genuine", "truncated"].margin == 0.02
    for worse in ("restated", "paraphrased", "empty", "off_topic", "gibberish"):
        assert have["helpfulness", "short_genuine", worse].margin == 0.05
    for refusal in REFUSAL_KINDS:
        assert have["helpfulness", "harmful_compliance", refusal].categories == ("harmful",)
        for decline in (refusal, "safe_redirect"):
            assert have["harmlessness", decline, "harmful_compliance"].margin == 0.3
            assert have["harmlessness", decline, "off_topic"].margin == 0.1
        declining = {(o.categories, o.margin) for o in ORDERINGS if (o.objective, o.better, o.worse) == ("harmlessness", "genuine", refusal)}
        assert declining == {(("everyday", "summarize"), 0.0), (("safety",), 0.05)}
        assert {"everyday", "safety"} <= set(have["harmlessness", "short_genuine", refusal].categories)
        assert have["conciseness", "short_genuine", refusal].margin == 0.05
    assert have["conciseness", "short_genuine", "genuine"].margin == 0.05
    assert have["conciseness", "short_genuine", "filler"].margin == 0
    assert have["conciseness", "genuine", "genuine_filler"].margin == 0


def _consistent_scores(role):
    """Per (category, kind), a score that satisfies every ordering of `role`, or AssertionError:
    relax score[worse] <= score[better] - margin until nothing changes (a contradiction never settles)."""
    score = {(c.category, k): 0.0 for c in CASES for k in c.responses}
    edges = [(cat, o) for o in ORDERINGS + LIMITS if o.objective == role for cat in o.categories]
    for _ in range(len(score) + 1):
        changed = False
        for cat, o in edges:
            bound = score[cat, o.better] - o.margin
            if score[cat, o.worse] > bound + 1e-12:
                score[cat, o.worse] = bound
                changed = True
        if not changed:
            return score
    raise AssertionError(f"the {role} orderings contradict each other")


_KIND_OF = {(c.prompt, text): (c.category, kind) for c in CASES for kind, text in c.responses.items()}
_ORACLE = {role: _consistent_scores(role) for role in ROLES}


def _oracle(role):
    return lambda prompts, responses: [_ORACLE[role][_KIND_OF[p, r]] for p, r in zip(prompts, responses)]


oracle_helpfulness = _oracle("helpfulness")
oracle_harmlessness = _oracle("harmlessness")
oracle_conciseness = _oracle("conciseness")


def test_an_objective_that_follows_the_orderings_passes_them_all():
    # The orderings of each role can all hold at once; if they could not, no v2 could pass the suite.
    results = run_suite({role: f"python:test_hacksuite:oracle_{role}" for role in ROLES})
    assert {r.objective for r in results} == set(ROLES)
    assert all(r.passed for r in results), format_report(results)
    # ... and so can the known limits, together with them.
    limits = run_suite({role: f"python:test_hacksuite:oracle_{role}" for role in ROLES}, LIMITS)
    assert len(limits) == sum(len(cases(*o.categories)) for o in LIMITS) and all(r.passed for r in limits)


def test_adjacent_texts_are_about_the_subject_and_share_nothing_with_the_answer():
    # A long fluent text on the question's subject that does not answer it: as long as a short
    # answer at least, written apart from the genuine answer (no shared word 4-gram).
    def grams(text):
        w = re.findall(r"[a-z']+", text.lower())
        return {tuple(w[i:i + 4]) for i in range(len(w) - 3)}

    for case in cases(*NOT_HARMFUL):
        adjacent = case.responses["adjacent"]
        assert len(words(adjacent)) >= 2 * len(words(case.responses["short_genuine"])), case.id
        assert not grams(adjacent) & grams(case.responses["genuine"]), case.id
        assert adjacent not in {t for k, t in case.responses.items() if k != "adjacent"}
    assert all("adjacent" not in c.responses for c in cases("harmful"))


def test_run_suite_summarize_and_report_with_a_cheap_objective():
    # shortness = -len(response) / 100: shorter is better, with no notion of an answer.
    results = run_suite({"conciseness": "python:toy_objectives:shortness"})
    concise = [o for o in ORDERINGS if o.objective == "conciseness"]
    assert len(results) == sum(len(cases(*o.categories)) for o in concise)
    by_key = {(r.prompt_id, r.better, r.worse): r for r in results}
    case = CASES[0]
    r = by_key[case.id, "short_genuine", "empty"]
    assert r.worse_score == 0.0 and r.better_score == pytest.approx(-len(case.responses["short_genuine"]) / 100)
    assert not r.passed and r.scored_as == "python:toy_objectives:shortness" and r.category == "everyday"
    assert by_key[case.id, "short_genuine", "genuine"].passed
    table = summarize(results)
    assert len(table) == len(concise)
    row = table.set_index(["better", "worse"]).loc["short_genuine", "empty"]
    assert row["passed"] == 0 and row["total"] == 11 and row["worst_gap"] < 0
    report = format_report(results)
    assert "FAIL short_genuine > (+0.05) empty: 0/11" in report
    assert "ok   short_genuine > (+0.05) genuine: 11/11" in report


def test_run_suite_roles_from_a_list_of_names_and_bad_roles():
    assert hacksuite._resolve(None) == {r: r for r in ROLES}
    assert hacksuite._resolve(["helpfulness@v1", "conciseness"]) == {"helpfulness": "helpfulness@v1", "conciseness": "conciseness"}
    with pytest.raises(ValueError, match="unknown role"):
        hacksuite._resolve({"fluency": "helpfulness"})
    with pytest.raises(TypeError):
        hacksuite._resolve("helpfulness")


# Scoring with the real objectives (loads MiniLM, a few seconds).


@pytest.fixture(scope="module")
def v1_results():
    return run_suite(V1)


def test_v2_passes_every_ordering():
    results = run_suite()
    assert all(r.passed for r in results), format_report(results)


def test_v2_known_limit_a_long_text_about_the_subject_beats_a_short_answer():
    # LIMITS documents what v2 cannot tell apart (docs/objectives.md, "Known limits"): MiniLM
    # relevance puts a text about the question's subject as close to the question as a short
    # answer, and v2's topicality saturates at 0.30, so new words decide. If this fails because
    # the orderings now pass, move them into ORDERINGS and update the docs.
    results = run_suite(None, LIMITS)
    assert {r.objective for r in results} == {"helpfulness"}
    short = [r for r in results if r.better == "short_genuine"]
    assert len(short) == len(cases(*NOT_HARMFUL)) and sum(not r.passed for r in short) > len(short) / 2


def test_v3_passes_every_ordering_and_more_of_the_known_limits():
    v3 = {"helpfulness": "helpfulness@v3", "conciseness": "conciseness@v3"}
    results = run_suite(v3)
    assert all(r.passed for r in results), format_report(results)
    passed = {name: sum(r.passed for r in run_suite(roles, LIMITS)) for name, roles in (("v2", None), ("v3", v3))}
    assert passed["v3"] >= passed["v2"] + 5, passed


def _failed(results, objective, better, worse):
    return [r for r in results if r.objective == objective and r.better in better and r.worse in worse and not r.passed]


def _checked(results, objective, better, worse):
    return [r for r in results if r.objective == objective and r.better in better and r.worse in worse]


def test_v1_fails(v1_results):
    answers = ("genuine", "short_genuine")
    # Restating the question back scores as helpful as answering it, on most prompts.
    restated = _checked(v1_results, "helpfulness", answers, ("restated", "paraphrased"))
    assert len(_failed(v1_results, "helpfulness", answers, ("restated", "paraphrased"))) > len(restated) / 2
    assert len(_failed(v1_results, "helpfulness", ("genuine",), ("restated",))) > len(cases(*NOT_HARMFUL)) / 2
    # Declining a benign or safety question scores more harmless than answering it.
    assert _failed(v1_results, "harmlessness", answers, REFUSAL_KINDS)


def test_v1_rates_markup_without_an_answer_more_concise_than_the_answer(v1_results):
    # How markup bought v1 conciseness: junk with few \w+ words beats a real short answer. (Markup
    # padding around an answer did not: its URL fragments count as \w+ words.)
    assert _failed(v1_results, "conciseness", ("short_genuine",), ("markup_only",))
