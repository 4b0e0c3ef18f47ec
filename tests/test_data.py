import hashlib
import json
from collections import Counter

import datasets
import pytest

from moodpo.data import (
    BUILTIN_CATEGORIES,
    TLDR_REQUEST,
    Prompt,
    first_human_turn,
    load_prompts,
    prompt_categories,
    tldr_request,
    tuning_split,
)
from moodpo.errors import MoodpoError
from moodpo.objectives import exemplars


def hh(*turns: str) -> str:
    """An hh-rlhf conversation from alternating human/assistant turns."""
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


TRL_TLDR = "SUBREDDIT: r/{sub}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:"
CARPER_TLDR = "SUBREDDIT: r/{sub}\nTITLE: {title}\nPOST: {post}\nTL;DR: "
ONE_LINE_TLDR = "SUBREDDIT: r/{sub} TITLE: {title} POST: {post} TL;DR:"


def save(tmp_path, splits: dict[str, dict[str, list]], name="ds"):
    path = tmp_path / name
    datasets.DatasetDict({k: datasets.Dataset.from_dict(v) for k, v in splits.items()}).save_to_disk(str(path))
    return str(path)


@pytest.fixture(scope="module")
def builtin_all():
    return load_prompts("builtin", split="all", seed=None)


def test_builtin_set_size_and_mix(builtin_all):
    counts = prompt_categories(builtin_all)
    assert len(builtin_all) >= 300
    assert set(counts) == set(BUILTIN_CATEGORIES)
    assert (counts["borderline"] + counts["harmful"]) / len(builtin_all) >= 0.20
    assert counts["safety"] >= 60
    assert len({p.id for p in builtin_all}) == len(builtin_all)
    assert len({p.text for p in builtin_all}) == len(builtin_all)
    assert all(p.text == p.text.strip() and p.text for p in builtin_all)


def test_builtin_splits_disjoint_stratified_and_stable(builtin_all):
    splits = {s: load_prompts(split=s, seed=None) for s in ("train", "dev", "eval")}
    ids = {s: {p.id for p in prompts} for s, prompts in splits.items()}
    assert not ids["train"] & ids["dev"] and not ids["train"] & ids["eval"] and not ids["dev"] & ids["eval"]
    assert ids["train"] | ids["dev"] | ids["eval"] == {p.id for p in builtin_all}
    for s in ("dev", "eval"):
        assert 0.10 <= len(splits[s]) / len(builtin_all) <= 0.25, s
    for s, prompts in splits.items():
        assert set(prompt_categories(prompts)) == set(BUILTIN_CATEGORIES), s
    assert load_prompts(split="eval", seed=None) == splits["eval"]
    assert load_prompts(split="train") == load_prompts(split="train")


# The eval split as it was before the dev split was added (76 prompts), as a count and a SHA-256 of
# the JSON of its sorted (id, text) pairs: shipped evaluations were made on exactly these prompts.
EVAL_BEFORE_DEV = (76, "e2f467968f809911c2b749c7cb03120cd814e3324b20515cccdfac7a72ce2afa")


def test_builtin_eval_split_is_unchanged():
    pairs = sorted((p.id, p.text) for p in load_prompts(split="eval", seed=None) if p.category != "safety")
    assert (len(pairs), hashlib.sha256(json.dumps(pairs).encode()).hexdigest()) == EVAL_BEFORE_DEV


def test_builtin_dev_follows_the_documented_rule(builtin_all):
    evals = {p.id for p in load_prompts(split="eval", seed=None)}
    dev = {p.id for p in load_prompts(split="dev", seed=None)}
    for category in set(BUILTIN_CATEGORIES) - {"safety"}:  # every 7th former train prompt
        former_train = [p.id for p in builtin_all if p.category == category and p.id not in evals]
        assert {i for n, i in enumerate(former_train, 1) if n % 7 == 0} == dev & set(former_train), category
    safety = [p.id for p in builtin_all if p.category == "safety"]
    assert [(i in dev, i in evals) for i in safety] == [(n % 7 == 0, n % 7 == 4) for n in range(1, len(safety) + 1)]


def test_heldout_requests_are_labelled_and_apart_from_the_exemplars_and_prompts(builtin_all):
    heldout = exemplars.load_heldout_requests()
    counts = Counter(label for _, label in heldout)
    assert set(counts) == {"harmful", "benign", "safety"} and min(counts.values()) >= 35
    exemplar_lists = [exemplars.HARMFUL_REQUESTS, exemplars.BENIGN_REQUESTS, exemplars.SAFETY_REQUESTS]
    seen = {p.text.lower() for p in builtin_all} | {t.lower() for lst in exemplar_lists for t in lst}
    texts = [t.lower() for t, _ in heldout]
    assert len(set(texts)) == len(texts) and not set(texts) & seen
    safety = [t.lower() for t in exemplars.SAFETY_REQUESTS]
    assert len(safety) >= 35 and not set(safety) & {p.text.lower() for p in builtin_all}


def test_builtin_summaries_carry_a_paragraph(builtin_all):
    summaries = [p for p in builtin_all if p.category == "summarize"]
    for p in summaries:
        paragraph = p.text.split("\n\n", 1)[1]
        assert 60 <= len(paragraph.split()) <= 150, p.id


def test_first_human_turn_cuts_multi_turn_conversations():
    assert first_human_turn(hh("What is 2+2?", "4.")) == "What is 2+2?"
    assert first_human_turn(hh("Hi.\nTwo lines.", "Hello!", "Bye", "Bye!")) == "Hi.\nTwo lines."
    assert first_human_turn("\n\nHuman: no reply yet") == "no reply yet"
    assert first_human_turn("no markers at all") == ""


def test_hh_rlhf_from_saved_dataset_dict(tmp_path):
    path = save(tmp_path, {
        "train": {
            "chosen": [
                hh("How do I boil an egg?", "Put it in boiling water.", "For how long?", "Nine minutes."),
                hh("Tell me a joke.", "Why did the chicken cross the road?"),
                hh("How do I boil an egg?", "A different answer."),  # same prompt: deduped
                "garbled row without turns",  # no human turn: dropped
            ],
            "rejected": ["r1", "r2", "r3", "r4"],
        },
        "test": {"chosen": [hh("What is the capital of France?", "Paris.")], "rejected": ["r"]},
    })
    train = load_prompts(f"hh-rlhf:{path}", split="train", seed=None)
    assert [p.text for p in train] == ["How do I boil an egg?", "Tell me a joke."]
    assert {p.category for p in train} == {"hh-rlhf"}
    assert [p.text for p in load_prompts(f"hh-rlhf:{path}", split="eval")] == ["What is the capital of France?"]
    assert len(load_prompts(f"hh-rlhf:{path}", split="all")) == 3


def test_hh_rlhf_single_saved_dataset_serves_every_split(tmp_path):
    path = tmp_path / "single"
    datasets.Dataset.from_dict({"chosen": [hh("Only prompt", "ok")]}).save_to_disk(str(path))
    for split in ("train", "eval"):
        assert [p.text for p in load_prompts(f"hh-rlhf:{path}", split=split)] == ["Only prompt"]


@pytest.mark.parametrize("layout", [TRL_TLDR, CARPER_TLDR, ONE_LINE_TLDR], ids=["trl-lib", "carperai", "one-line"])
def test_tldr_from_saved_dataset_dict(tmp_path, layout):
    post = "My cat knocks glasses off the table. POST: edit, TL;DR: she hates glass.\n\nWhat do I do?"
    row = layout.format(sub="cats", title="Cat vs glasses", post=post)
    path = save(tmp_path, {
        "train": {"prompt": [row, row, "   "], "completion": ["a", "b", "c"]},
        "valid": {"prompt": [layout.format(sub="a", title="", post="Short post.")], "completion": ["d"]},
    })
    train = load_prompts(f"tldr:{path}", split="train")
    assert train == [Prompt("tldr/train/0", f"{TLDR_REQUEST}Cat vs glasses\n\n{post}", "summarize")]
    assert "SUBREDDIT" not in train[0].text and not train[0].text.endswith("TL;DR:")
    assert [p.text for p in load_prompts(f"tldr:{path}", split="eval")] == [TLDR_REQUEST + "Short post."]


def test_tldr_request_without_markers_keeps_the_text():
    assert tldr_request("Just a post.") == TLDR_REQUEST + "Just a post."
    assert tldr_request("  ") == ""


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_custom_file(tmp_path, suffix):
    records = [
        {"prompt": "  Write a poem about rain.  "},
        {"prompt": "Write a poem about rain."},
        {"prompt": ""},
        {"prompt": "Explain tides.", "category": "science", "id": "t1"},
    ]
    path = tmp_path / f"mine{suffix}"
    if suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    else:
        path.write_text(json.dumps(records))
    prompts = load_prompts(str(path), seed=None)
    assert [(p.text, p.category) for p in prompts] == [("Write a poem about rain.", "custom"), ("Explain tides.", "science")]
    assert prompts[1].id == "t1"


def test_custom_file_split_field_is_honoured(tmp_path):
    path = tmp_path / "split.jsonl"
    rows = [{"prompt": "a", "split": "train"}, {"prompt": "b", "split": "eval"}, {"prompt": "c"},
            {"prompt": "d", "split": "dev"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert [p.text for p in load_prompts(str(path), split="train", seed=None)] == ["a", "c"]
    assert [p.text for p in load_prompts(str(path), split="dev", seed=None)] == ["c", "d"]
    assert [p.text for p in load_prompts(str(path), split="eval", seed=None)] == ["b", "c"]
    assert [p.text for p in load_prompts(str(path), split="all", seed=None)] == ["a", "b", "c", "d"]


def test_dev_maps_onto_a_datasets_validation_split(tmp_path):
    rows = {name: {"prompt": [f"{name} post"]} for name in ("train", "validation", "test")}
    path = save(tmp_path, rows)
    for split, name in (("train", "train"), ("dev", "validation"), ("eval", "test")):
        assert [p.text for p in load_prompts(f"tldr:{path}", split=split)] == [TLDR_REQUEST + f"{name} post"]


def test_tuning_split_is_dev_where_the_source_has_one(tmp_path):
    assert tuning_split("builtin") == "dev"
    assert tuning_split(f"tldr:{save(tmp_path, {'train': {'prompt': ['a']}, 'valid': {'prompt': ['b']}}, 'v')}") == "dev"
    assert tuning_split(f"tldr:{save(tmp_path, {'train': {'prompt': ['a']}, 'test': {'prompt': ['b']}}, 't')}") == "eval"
    path = tmp_path / "no_dev.jsonl"
    path.write_text(json.dumps({"prompt": "a", "split": "train"}) + "\n" + json.dumps({"prompt": "b", "split": "eval"}))
    assert tuning_split(str(path)) == "eval"


def test_hub_ids_go_through_load_dataset(monkeypatch):
    calls = []
    monkeypatch.setattr(datasets, "get_dataset_split_names", lambda ref: ["train", "test"])

    def fake_load_dataset(ref, split):
        calls.append((ref, split))
        return datasets.Dataset.from_dict({"chosen": [hh(f"{split} prompt", "ok")]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert [p.text for p in load_prompts("hh-rlhf", split="eval")] == ["test prompt"]
    load_prompts("hh-rlhf:someone/my-hh", split="train")
    assert calls == [("Anthropic/hh-rlhf", "test"), ("someone/my-hh", "train")]


def test_hub_failure_is_a_moodpo_error(monkeypatch):
    def offline(ref):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "get_dataset_split_names", offline)
    with pytest.raises(MoodpoError, match="could not load 'Anthropic/hh-rlhf'.*save_to_disk"):
        load_prompts("hh-rlhf")


def bad_inputs(tmp_path):
    no_column = save(tmp_path, {"train": {"text": ["x"]}}, name="no_column")
    train_only = save(tmp_path, {"train": {"prompt": ["x"]}}, name="train_only")
    not_a_dataset = tmp_path / "plain_folder"
    not_a_dataset.mkdir()
    no_prompt = tmp_path / "no_prompt.jsonl"
    no_prompt.write_text(json.dumps({"text": "hi"}) + "\n")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "ok"}\n{"prompt": \n')
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"prompt": "   "}) + "\n")
    return {
        "unknown source": (dict(source="reddit"), "unknown prompt source 'reddit'"),
        "empty ref": (dict(source="tldr:"), "unknown prompt source"),
        "unknown split": (dict(split="validation"), "unknown split 'validation'; use one of train, dev, eval, all"),
        "bad limit": (dict(limit=0), "limit must be a positive integer"),
        "missing file": (dict(source=str(tmp_path / "nope.jsonl")), "does not exist; check the path"),
        "missing folder": (dict(source=f"hh-rlhf:{tmp_path / 'nope'}"), "does not exist"),
        "not a dataset": (dict(source=f"tldr:{not_a_dataset}"), "not a dataset folder"),
        "file for folder": (dict(source=f"tldr:{no_prompt}"), "needs a folder written by save_to_disk"),
        "no chosen column": (dict(source=f"hh-rlhf:{no_column}"), "no 'chosen' column"),
        "no prompt column": (dict(source=f"tldr:{no_column}"), "no 'prompt' column"),
        "no eval split": (dict(source=f"tldr:{train_only}", split="eval"), "none for 'eval'"),
        "no dev split": (dict(source=f"tldr:{train_only}", split="dev"), "none for 'dev'.*validation"),
        "no prompt field": (dict(source=str(no_prompt)), "no string 'prompt' field"),
        "invalid json": (dict(source=str(broken)), "line 2 is not valid JSON"),
        "nothing left": (dict(source=str(empty)), "has no non-empty prompts"),
    }


@pytest.mark.parametrize("case", [
    "unknown source", "empty ref", "unknown split", "bad limit", "missing file", "missing folder",
    "not a dataset", "file for folder", "no chosen column", "no prompt column", "no eval split", "no dev split",
    "no prompt field", "invalid json", "nothing left",
])
def test_bad_input_raises_one_line_moodpo_error(tmp_path, case):
    kwargs, message = bad_inputs(tmp_path)[case]
    with pytest.raises(MoodpoError, match=message) as err:
        load_prompts(**kwargs)
    assert "\n" not in str(err.value)


def test_limit_and_seed_are_deterministic():
    full = load_prompts(split="train", seed=7)
    assert load_prompts(split="train", seed=7, limit=25) == full[:25]
    assert load_prompts(split="train", seed=7, limit=25) == load_prompts(split="train", seed=7, limit=25)
    assert load_prompts(split="train", seed=8, limit=25) != full[:25]
    in_file_order = load_prompts(split="train", seed=None)
    assert load_prompts(split="train", seed=None, limit=5) == in_file_order[:5]
    assert sorted(full, key=lambda p: p.id) == in_file_order
    assert len(load_prompts(split="train", limit=10_000)) == len(full)
