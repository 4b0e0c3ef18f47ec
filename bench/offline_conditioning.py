"""Can the real SmolLM2 learn to read the weight prefix from sampled pairs? An offline probe.

    python bench/offline_conditioning.py [--epochs 6] [--lr 3e-4] [--tokens 48]

Samples once from the embedded SmolLM2-135M (2 responses under each corner prefix, w = (1, 0) and
(0, 1), for the training prompts of the borderline and harmful categories), builds for every
prompt the pair that each corner picks from the 4 pooled responses (the one-hot case of
`mirror_weights`), and trains a fresh LoRA adapter with DPO for several epochs over these fixed
pairs. After each epoch it prints, for the same kind of pairs on the 25 held-out borderline and
harmful prompts, the prefix gap: a pair's implicit-reward margin under its own prefix minus its
margin under the other prefix, in nats (0 for a policy that ignores the prefix), with its standard
error and the share of held-out pairs where it is positive. At the end it samples the held-out
prompts at both corners with the base and the trained policy and prints the mean scores.
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objectives", nargs=2, default=["helpfulness", "harmlessness"])
    p.add_argument("--categories", nargs="*", default=["borderline", "harmful"])
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--samples", type=int, default=2, help="responses per prompt under each corner prefix")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=8, help="prompts per update (their 2 corner pairs each)")
    args = p.parse_args()

    from moodpo.conditioning import build_prefix
    from moodpo.data import filter_categories, load_prompts
    from moodpo.fastgen import FastSampler
    from moodpo.train.loss import dpo_loss
    from moodpo.models import add_lora, load_model, load_tokenizer
    from moodpo.objectives import get_objective, score_all
    from moodpo.train.pairs import select_pairs
    from moodpo.sampling import sample_responses, sequence_logps

    torch.manual_seed(0)
    np.random.seed(0)
    tok = load_tokenizer("smollm2-135m")
    model = add_lora(load_model("smollm2-135m"), r=16, alpha=32)
    policy = FastSampler(model, dtype=torch.float32)
    ref = FastSampler(model, dtype=torch.float32, adapters=False)
    objectives = [get_objective(o) for o in args.objectives]
    prefixes = [build_prefix(args.objectives, [1.0, 0.0]), build_prefix(args.objectives, [0.0, 1.0])]
    s = args.samples

    def corner_pairs(prompts: list[str], seed: int):
        """Sample, score, and pick each corner's pair from the prompt's pooled responses.

        Returns the rollout and an (m, 4) array of rollout rows, one line per pair: the prompt under
        its corner's prefix, the same prompt under the other prefix, the chosen and the rejected response.
        """
        n = len(prompts)
        torch.manual_seed(seed)
        rollout = sample_responses(model, tok, prompts + prompts, [prefixes[0]] * n + [prefixes[1]] * n,
                                   num_samples=s, max_new_tokens=args.tokens, sampler=policy)
        raw = score_all(objectives, [q for q in prompts + prompts for _ in range(s)], rollout.texts)
        z = (raw - raw.mean(0)) / (raw.std(0) + 1e-8)
        pools = np.array([np.r_[i * s:(i + 1) * s, (n + i) * s:(n + i + 1) * s] for i in range(n)])   # (n, 2s)
        rows = []
        for k in range(2):      # the trainer's rule: chosen = best, rejected = worst, ties skipped
            chosen, rejected, keep = select_pairs(z[pools, k], margin=1e-6)
            rows += [((k * n + i) * s, ((1 - k) * n + i) * s, pools[i, chosen[i]], pools[i, rejected[i]])
                     for i in np.flatnonzero(keep)]
        rows.sort(key=lambda r: (r[0] % (n * s), r[0]))     # prompt by prompt, corner (1, 0) first
        return rollout, np.array(rows)

    train = [q.text for q in filter_categories(load_prompts("builtin", "train"), args.categories, "--categories")]
    held = [q.text for q in filter_categories(load_prompts("builtin", "eval"), args.categories, "--categories")]
    t = time.perf_counter()
    train_rollout, train_rows = corner_pairs(train, 1)
    held_rollout, held_rows = corner_pairs(held, 2)
    print(f"sampled {len(train)} + {len(held)} prompts in {time.perf_counter() - t:.0f} s; "
          f"{len(train_rows)} training pairs, {len(held_rows)} held-out pairs")

    def logps(sampler, rollout, prompt_rows, completion_rows):
        b = rollout.pair(prompt_rows, completion_rows)
        return sampler.sequence_logps(b.prompt_ids, b.prompt_mask, b.completion_ids, b.completion_mask)

    # held-out: chosen/rejected under the pair's own prefix (own) and under the other one (other)
    held_batches = [(held_rows[:, 0], held_rows[:, 2]), (held_rows[:, 0], held_rows[:, 3]),
                    (held_rows[:, 1], held_rows[:, 2]), (held_rows[:, 1], held_rows[:, 3])]
    with torch.no_grad():
        held_ref = [logps(ref, held_rollout, *b) for b in held_batches]
        train_ref = logps(ref, train_rollout, np.r_[train_rows[:, 0], train_rows[:, 0]],
                          np.r_[train_rows[:, 2], train_rows[:, 3]])

    def prefix_gap() -> str:
        policy.refresh()
        with torch.no_grad():
            c_own, r_own, c_other, r_other = (logps(policy, held_rollout, *b) - r for b, r in zip(held_batches, held_ref))
        gap = (c_own - r_own) - (c_other - r_other)
        return (f"prefix gap {gap.mean():+.2f} +- {gap.std() / len(gap) ** 0.5:.2f} nats, "
                f"positive on {(gap > 0).float().mean():.0%} of held-out pairs")

    print(f"epoch 0: {prefix_gap()}")
    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr)
    m = len(train_rows)
    by_prompt = {}
    for j, row in enumerate(train_rows):      # a prompt's two corner pairs go in the same update
        by_prompt.setdefault(row[0] % (len(train) * s), []).append(j)
    groups = list(by_prompt.values())
    for epoch in range(1, args.epochs + 1):
        t, losses = time.perf_counter(), []
        order = np.random.permutation(len(groups))
        for start in range(0, len(order), args.batch):
            idx = np.array([j for g in order[start:start + args.batch] for j in groups[g]])
            batch = train_rollout.pair(np.r_[train_rows[idx, 0], train_rows[idx, 0]],
                                       np.r_[train_rows[idx, 2], train_rows[idx, 3]])
            lp = sequence_logps(model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids,
                                batch.completion_mask, share_prompts=True)
            loss, _, _ = dpo_loss(lp[:len(idx)], lp[len(idx):], train_ref[idx], train_ref[m + idx], beta=args.beta)
            loss.mean().backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.mean().item())
        print(f"epoch {epoch}: loss {np.mean(losses):.3f} ({time.perf_counter() - t:.0f} s), {prefix_gap()}", flush=True)

    policy.refresh()
    for name, sampler in (("base", ref), ("trained", policy)):
        for k, prefix in enumerate(prefixes):
            torch.manual_seed(5)
            rollout = sample_responses(model, tok, held, [prefix] * len(held), num_samples=4,
                                       max_new_tokens=args.tokens, sampler=sampler)
            raw = score_all(objectives, [q for q in held for _ in range(4)], rollout.texts).mean(0)
            print(f"{name}, w = one-hot {args.objectives[k]}: " +
                  ", ".join(f"{o} {v:.3f}" for o, v in zip(args.objectives, raw)) +
                  f", {rollout.lengths.float().mean():.1f} tokens")


if __name__ == "__main__":
    main()
