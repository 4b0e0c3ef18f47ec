"""On-policy sampling and sequence log-probabilities.

All samples of a batch come from one batched `generate` call; log-probs are computed only over
response tokens (`logits_to_keep`), never over the prompt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from moodpo.conditioning import build_messages
from moodpo.gating import gate_of, gate_rows

# What one more padded batch costs, in tokens of a row, when `length_groups` splits rows by length.
GROUP_OVERHEAD_TOKENS = 16


@dataclass
class Rollout:
    """Prompts with their sampled responses; row i*n + j is sample j of prompt i.

    prompt_ids, prompt_mask: (N, P) left-padded; completion_ids, completion_mask: (N, C)
    right-padded, the mask covering tokens up to and including the first EOS.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    texts: list[str]

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(-1)

    def pair(self, prompt_rows: Sequence[int], completion_rows: Sequence[int]) -> "Rollout":
        """Row i: the prompt of row prompt_rows[i] with the response of row completion_rows[i]."""
        p = torch.as_tensor(prompt_rows, dtype=torch.long)
        r = torch.as_tensor(completion_rows, dtype=torch.long)
        return Rollout(self.prompt_ids[p], self.prompt_mask[p], self.completion_ids[r], self.completion_mask[r],
                       [self.texts[i] for i in r.tolist()])

    def select(self, rows: torch.Tensor | Sequence[int]) -> "Rollout":
        return self.pair(rows, rows)

    def trimmed(self) -> "Rollout":
        """The same rows without the columns that are padding in every row: the leading ones of the
        (left-padded) prompts and the trailing ones of the (right-padded) responses. Positions follow
        the masks, so log-probs do not change; a forward pass costs less."""
        p = int(self.prompt_mask.sum(-1).max())
        c = max(int(self.completion_mask.sum(-1).max()), 1)
        start = self.prompt_ids.shape[1] - p
        return Rollout(self.prompt_ids[:, start:], self.prompt_mask[:, start:], self.completion_ids[:, :c],
                       self.completion_mask[:, :c], self.texts)


def chat_texts(tokenizer, prompts: Sequence[str], prefixes: Sequence[str | None], max_prompt_tokens: int | None = None) -> list[str]:
    """Render (prompt, prefix) pairs with the tokenizer's chat template, ready for generation.

    A user prompt longer than `max_prompt_tokens` is cut to that many tokens before templating,
    so the template's special tokens are never cut.
    """
    return [tokenizer.apply_chat_template(build_messages(cut_prompt(tokenizer, prompt, max_prompt_tokens), prefix),
                                          tokenize=False, add_generation_prompt=True)
            for prompt, prefix in zip(prompts, prefixes, strict=True)]


def cut_prompt(tokenizer, prompt: str, max_prompt_tokens: int | None) -> str:
    """The prompt cut to its first `max_prompt_tokens` tokens (None: as it is)."""
    if max_prompt_tokens is None:
        return prompt
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[:max_prompt_tokens]) if len(ids) > max_prompt_tokens else prompt


def encode_prompts(tokenizer, prompts, prefixes, max_prompt_tokens=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (ids, mask) of the chat-templated prompts, shape (B, P)."""
    tokenizer.padding_side = "left"
    enc = tokenizer(chat_texts(tokenizer, prompts, prefixes, max_prompt_tokens), padding=True,
                    add_special_tokens=False, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def completion_mask(completion_ids: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """1 for tokens up to and including the first EOS of each row, 0 after it. (N, C) -> (N, C)."""
    is_eos = torch.isin(completion_ids, torch.as_tensor(list(eos_ids), device=completion_ids.device))
    after_eos = (is_eos.cumsum(-1) - is_eos.long()) > 0
    return (~after_eos).long()


def eos_token_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = ids if isinstance(ids, list) else [ids] if ids is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def generation_config(tokenizer, eos_ids, *, max_new_tokens, min_new_tokens=0, temperature=1.0, top_p=1.0,
                      top_k=0, do_sample=True):
    """An explicit GenerationConfig, so the model's shipped defaults never change what we sample."""
    from transformers import GenerationConfig

    kwargs = dict(max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens or None, do_sample=do_sample,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_ids)
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k)
    return GenerationConfig(**kwargs)


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: Sequence[str], prefixes: Sequence[str | None], *, num_samples: int,
                     max_new_tokens: int, min_new_tokens: int = 0, temperature: float = 1.0, top_p: float = 1.0,
                     top_k: int = 0, do_sample: bool = True, max_prompt_tokens: int | None = None,
                     autocast: torch.dtype | None = None, sampler=None) -> Rollout:
    """Sample `num_samples` responses for each prompt in one batched call.

    `sampler` (a `moodpo.fastgen.FastSampler` over `model`) replaces `model.generate`.
    """
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, prefixes, max_prompt_tokens)
    device = next(model.parameters()).device
    prompt_ids = prompt_ids.repeat_interleave(num_samples, 0).to(device)
    prompt_mask = prompt_mask.repeat_interleave(num_samples, 0).to(device)
    completion_ids, mask, texts = generate_ids(
        model, tokenizer, prompt_ids, prompt_mask, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
        temperature=temperature, top_p=top_p, top_k=top_k, do_sample=do_sample, autocast=autocast, sampler=sampler)
    return Rollout(prompt_ids, prompt_mask, completion_ids, mask, texts)


@torch.no_grad()
def generate_ids(model, tokenizer, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int,
                 min_new_tokens: int = 0, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                 do_sample: bool = True, autocast: torch.dtype | None = None, sampler=None
                 ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """One response per row of left-padded prompt ids (N, P): completion ids (N, C) with pad after the
    first EOS, their mask (N, C) and the stripped texts."""
    device = prompt_ids.device
    eos_ids = eos_token_ids(model, tokenizer)
    if sampler is not None:
        completion_ids = sampler.generate(prompt_ids, prompt_mask, max_new_tokens=max_new_tokens,
                                          min_new_tokens=min_new_tokens, eos_token_ids=eos_ids,
                                          pad_token_id=tokenizer.pad_token_id, do_sample=do_sample,
                                          temperature=temperature, top_k=top_k, top_p=top_p)
    else:
        config = generation_config(tokenizer, eos_ids, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                                   temperature=temperature, top_p=top_p, top_k=top_k, do_sample=do_sample)
        was_training = model.training
        model.eval()
        with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
            out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=config)
        model.train(was_training)
        completion_ids = out[:, prompt_ids.shape[1]:]
    mask = completion_mask(completion_ids, eos_ids)
    completion_ids = completion_ids.masked_fill(mask == 0, tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
    return completion_ids, mask, [t.strip() for t in texts]


def pad_rows(rows: Sequence[torch.Tensor], pad_token_id: int, *, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), (N, max length), of N 1-d token id tensors, padded on `side`: "left" for prompts,
    "right" for responses."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=rows[0].dtype, device=rows[0].device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=rows[0].device)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, span], mask[i, span] = r, 1
    return ids, mask


def prompt_table(tables: Sequence[tuple[torch.Tensor, torch.Tensor]], pad_token_id: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt tables (ids (N_i, P_i), mask (N_i, P_i)) stacked into one (sum N_i, max P_i)."""
    rows = [ids[i][mask[i] > 0] for ids, mask in tables for i in range(len(ids))]
    return pad_rows(rows, pad_token_id, side="left")


@torch.no_grad()
def sample_after_openers(model, tokenizer, rollout: Rollout, prompt_rows: Sequence[int], openers: Sequence[list[int]],
                         *, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                         autocast: torch.dtype | None = None, sampler=None
                         ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The policy's own responses forced to begin with an opener: row j continues the prompt of
    rollout row prompt_rows[j] (its prefix included) after the token ids openers[j].

    A guided candidate covers behaviour the policy rarely samples (a refusal begins "I can't help
    with") while the rest of it is the policy's own text, so no one fixed string is learned.
    Returns completion ids (G, C) = opener then continuation, their mask and the texts; the whole
    response stays within max_new_tokens.
    """
    device = rollout.prompt_ids.device
    rows = [torch.cat([rollout.prompt_ids[r][rollout.prompt_mask[r] > 0],
                       torch.as_tensor(o, dtype=rollout.prompt_ids.dtype, device=device)])
            for r, o in zip(prompt_rows, openers, strict=True)]
    prompt_ids, prompt_mask = pad_rows(rows, tokenizer.pad_token_id, side="left")
    longest = max(len(o) for o in openers)
    tail, tail_mask, _ = generate_ids(model, tokenizer, prompt_ids, prompt_mask,
                                      max_new_tokens=max(1, max_new_tokens - longest), temperature=temperature,
                                      top_p=top_p, top_k=top_k, autocast=autocast, sampler=sampler)
    responses = [torch.cat([torch.as_tensor(o, dtype=tail.dtype, device=device), tail[j][tail_mask[j] > 0]])
                 for j, o in enumerate(openers)]
    ids, mask = pad_rows(responses, tokenizer.pad_token_id, side="right")
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    return ids, mask, [t.strip() for t in texts]


class ReferenceLogps:
    """The frozen reference's log-probs of a rollout's responses, (N,), behind one call, whichever
    holds the reference: the fast path's snapshot (`sampler`, a `moodpo.fastgen.FastSampler` taken
    with its adapters off), a frozen full copy (`model`), or the policy itself with its LoRA adapter
    disabled (`peft_model`, TRL's `with model.disable_adapter():`). The trainer picks once."""

    def __init__(self, *, sampler=None, model=None, peft_model=None, autocast: torch.dtype | None = None):
        if sum(x is not None for x in (sampler, model, peft_model)) != 1:
            raise ValueError("give exactly one of sampler, model and peft_model")
        self.sampler, self.model, self.peft_model, self.autocast = sampler, model, peft_model, autocast

    @torch.no_grad()
    def __call__(self, rollout: Rollout) -> torch.Tensor:
        args = (rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids, rollout.completion_mask)
        if self.sampler is not None:
            return self.sampler.sequence_logps(*args)
        model = self.model if self.model is not None else self.peft_model
        device = next(model.parameters()).device
        with torch.autocast(device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None):
            if self.model is not None:
                return sequence_logps(model, *args)
            with model.disable_adapter():
                return sequence_logps(model, *args)


def distinct_prompts(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, gates: torch.Tensor | None = None):
    """The distinct rows of left-padded prompts: ids (U, P), mask (U, P) and rows (N,), row i's index.

    The samples of one prompt, or a pair's chosen and rejected, share one row; rows come sorted.
    gates: (N, K) each row's weights under a gated LoRA (`moodpo.gating`): rows share only when
    their weights are equal too.
    """
    p = prompt_ids.shape[1]
    key = [prompt_ids, prompt_mask.long()]
    if gates is not None:  # exact equality of the float bits, as a long key
        key.append(gates.float().contiguous().view(torch.int32).long().to(prompt_ids.device))
    unique, rows = torch.unique(torch.cat(key, dim=1), dim=0, return_inverse=True)
    return unique[:, :p], unique[:, p:2 * p].to(prompt_mask.dtype), rows


def first_rows(rows: torch.Tensor, count: int) -> torch.Tensor:
    """For an inverse index rows (N,) into `count` distinct rows, the first row of each, (count,)."""
    first = torch.full((count,), len(rows), dtype=torch.long, device=rows.device)
    return first.scatter_reduce(0, rows, torch.arange(len(rows), device=rows.device), "amin")


def length_groups(lengths, *, min_groups: int = 1, max_size: int | None = None,
                  overhead: float = GROUP_OVERHEAD_TOKENS) -> list[np.ndarray]:
    """Indices of `lengths` (n,) in groups of similar length, shortest first, for batches padded
    only to their own longest row.

    The split minimises the padded work, sum over groups of size x longest length, plus `overhead`
    tokens a group (what one more batch costs in dispatch and smaller matmuls), with at most
    `max_size` rows a group; groups are then halved (largest first) until there are `min_groups`
    (or one a row). Prompts in our data are bimodal (most 50-65 tokens with the prefix, a few
    160-190), so a batch of 8 padded to its longest spent 36-60% of its prompt work on padding.
    """
    lengths = np.asarray(lengths, dtype=float)
    order = np.argsort(lengths, kind="stable")
    ordered = lengths[order]
    n = len(order)
    size = n if max_size is None else max(1, max_size)
    cost = np.zeros(n + 1)
    start = np.zeros(n + 1, dtype=int)
    for j in range(1, n + 1):  # cost[j]: the best split of the j shortest; the last group ends at j
        i = np.arange(max(0, j - size), j)
        total = cost[i] + (j - i) * ordered[j - 1] + overhead
        best = int(np.argmin(total))
        cost[j], start[j] = total[best], i[best]
    groups, j = [], n
    while j > 0:
        groups.append(order[start[j]:j])
        j = start[j]
    groups.reverse()
    while len(groups) < min(min_groups, n):
        largest = max(range(len(groups)), key=lambda g: len(groups[g]))
        groups[largest:largest + 1] = np.array_split(groups[largest], 2)
    return groups


def completion_logps(logits: torch.Tensor, completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Sum over response tokens of log-softmax(logits) at each token: (N, C, V), (N, C), (N, C) -> (N,)."""
    token_logps = torch.gather(logits, -1, completion_ids.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    return (token_logps * completion_mask).sum(-1)


def sequence_logps(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                   completion_mask: torch.Tensor, *, share_prompts: bool = False) -> torch.Tensor:
    """Sum of log p(response token | prefix) over response tokens, shape (N,).

    Only the last C + 1 positions' logits are materialised (`logits_to_keep`): position P - 1
    predicts the first response token, position P + C - 2 the last. Position ids follow the
    attention mask, as in generation, so left padding does not shift positions.

    `share_prompts`: rows with the same prompt (a pair's chosen and rejected) run it once and
    continue from copies of its KV cache, so the prompt's forward and backward are done once per
    prompt. The gradient is the same; a model under DDP must not use it (two forward calls).
    """
    if share_prompts and completion_ids.shape[1] > 1:
        gate = gate_of(model)
        gates = gate.gates if gate is not None and gate.gates is not None and len(gate.gates) > 1 else None
        ids, mask, rows = distinct_prompts(prompt_ids, prompt_mask, gates)
        if len(ids) < len(prompt_ids):
            # Under a gate with a weight row per response, the prompt pass takes its rows' weights.
            gated = contextlib.nullcontext() if gates is None else gate_rows(model, gates[first_rows(rows, len(ids))])
            return _shared_prompt_logps(model, ids, mask, rows, completion_ids, completion_mask, gated)
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    c = completion_ids.shape[1]
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   logits_to_keep=c + 1, use_cache=False).logits[:, :-1].float()
    return completion_logps(logits, completion_ids, completion_mask)


def _shared_prompt_logps(model, prompt_ids, prompt_mask, rows, completion_ids, completion_mask,
                         prompt_pass=contextlib.nullcontext()) -> torch.Tensor:
    """`sequence_logps` with each distinct prompt (U, P) run once; rows (N,) maps responses to prompts.
    The prompt pass runs inside the context `prompt_pass` (a gated LoRA's weights of the U rows)."""
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    with prompt_pass:
        out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_select_indices(rows)                                   # differentiable row copies
    c = completion_ids.shape[1]
    attention_mask = torch.cat([prompt_mask[rows], completion_mask[:, :-1]], dim=1)
    positions = prompt_mask.sum(-1)[rows, None] + torch.arange(c - 1, device=completion_ids.device)
    rest = model(input_ids=completion_ids[:, :-1], attention_mask=attention_mask, position_ids=positions,
                 past_key_values=cache, use_cache=True).logits
    logits = torch.cat([out.logits[rows, -1:], rest], dim=1).float()   # (N, C, V)
    return completion_logps(logits, completion_ids, completion_mask)


def append_responses(rollout: Rollout, prompt_rows: Sequence[int], completion_ids: torch.Tensor,
                     completion_mask: torch.Tensor, texts: Sequence[str], *, pad_token_id: int) -> Rollout:
    """The rollout with G more rows: row j holds the prompt of rollout row prompt_rows[j] and the
    response completion_ids[j] (G, C'), right-padded; both sides are widened to one width."""
    width = max(rollout.completion_ids.shape[1], completion_ids.shape[1])

    def widen(t: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    src = torch.as_tensor(prompt_rows, dtype=torch.long, device=rollout.prompt_ids.device)
    return Rollout(torch.cat([rollout.prompt_ids, rollout.prompt_ids[src]]),
                   torch.cat([rollout.prompt_mask, rollout.prompt_mask[src]]),
                   torch.cat([widen(rollout.completion_ids, pad_token_id), widen(completion_ids, pad_token_id)]),
                   torch.cat([widen(rollout.completion_mask, 0), widen(completion_mask.to(rollout.completion_mask.dtype), 0)]),
                   rollout.texts + list(texts))


def add_extra_responses(rollout: Rollout, extra: dict[str, tuple[str, list[int]]], categories: Sequence[str | None],
                        num_samples: int, *, pad_token_id: int) -> tuple[Rollout, np.ndarray]:
    """Append each prompt's fixed response (`extra_responses`) as a row after the B*n samples.

    extra: category (or "*" for any) -> (text, token ids ending in EOS); categories: (B,), one
    per prompt. A fixed row carries its prompt's first sample's prompt (its prefix included).
    Returns the extended rollout and, per prompt, the row of its fixed response, (B,), -1 for none.
    """
    rows, found = [], []
    for i, category in enumerate(categories):
        response = extra.get(category) or extra.get("*")
        if response is not None:
            rows.append(i)
            found.append(response)
    extra_rows = np.full(len(categories), -1)
    if not rows:
        return rollout, extra_rows
    extra_rows[rows] = len(rollout.texts) + np.arange(len(rows))
    device = rollout.completion_ids.device
    extra_ids, extra_mask = pad_rows([torch.as_tensor(ids, dtype=rollout.completion_ids.dtype, device=device)
                                      for _, ids in found], pad_token_id, side="right")
    return append_responses(rollout, np.asarray(rows) * num_samples, extra_ids, extra_mask,
                            [text for text, _ in found], pad_token_id=pad_token_id), extra_rows
