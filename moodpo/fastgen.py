"""A lean sampler for Llama-family models: one bf16 snapshot of the weights, a static KV cache.

`model.generate` spends most of its time on CPU in per-module Python and per-step cache growth:
SmolLM2-135M has 30 layers of about 40 small ops each. `FastSampler` runs the same network as
about 15 ops a layer: q/k/v and gate/up fused into one matmul each, LoRA deltas merged into the
snapshot (`refresh()` re-merges after an optimizer step, about 50 ms), the KV cache allocated
once. What it computes matches autocast: the residual stream and the norms stay float32, matmuls
run in `dtype`. Sampling follows transformers' order (temperature, top-k, top-p, then a draw
from the resulting distribution); EOS is masked before `min_new_tokens`; finished rows are padded.

Only plain Llama layouts are supported (`supports()`); anything else falls back to `generate`.

A float32 snapshot on a CPU keeps its matrices in one of three layouts (`_mm`): plain, packed for
oneDNN, or, with `half=True` (the samplers that draw responses), float16 for fbgemm's fp16 GEMM,
which reads half the bytes and computes in float32 (BENCHMARKS.md: 1.56x the tokens/s at one row
for 1.6e-6 nats of KL a token on SmolLM2-135M).

A LoRA gated by the objective weights (`lora_gate`, `moodpo.gating`) has a different update in
every row, so its factors stay unmerged: each adapted matmul adds ((x A) * g(w)) B, with the rows'
weights read from `gate_rows` at call time, and rows with one prompt text share a prefill only when
their weights are equal too. Gated snapshots decode eagerly (no `compile`).

`compile=True` runs each decode step as one compiled graph (`torch.compile`, inductor; on CPU it
needs a C++ compiler): the KV cache and the key mask have static shapes (the cache length rounded
up to a multiple of `STATIC_LENGTH`) and the new keys are written at a slot given as a tensor, so
one graph serves every step of every call with the same batch size and cache length. A shape
compiles once per process (tens of seconds on 2 CPU cores; inductor's on-disk cache makes later
processes faster); if compilation fails the sampler warns once and decodes eagerly. Greedy tokens
match the eager path in float32; in bf16 inductor fuses the norms and casts differently, and on
SmolLM2-135M the tokens were seen to diverge within 32 (docs/training.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from moodpo.gating import gate_of
from moodpo.sampling import completion_logps, distinct_prompts, first_rows, length_groups

log = logging.getLogger(__name__)

# With compile=True the KV cache length is rounded up to a multiple of this, so calls whose prompts
# differ a little in length reuse one compiled decode step.
STATIC_LENGTH = 64

# The batch size oneDNN's packed weights are laid out for: the fastest of 1, 16 and 64 at every
# batch size from 1 to 256 on the AVX2 CPU measured (BENCHMARKS.md).
PACK_BATCH = 16


def onednn_available(device: torch.device, dtype: torch.dtype) -> bool:
    """True where the snapshot's matmuls can run as oneDNN linears on packed weights: a CPU tensor
    in float32 with torch built with oneDNN (mkldnn), unless MOODPO_ONEDNN=0. bf16 stays on torch's
    default path, which already goes through oneDNN and was measured fast on CPUs with AMX."""
    return (os.environ.get("MOODPO_ONEDNN", "1") != "0" and device.type == "cpu" and dtype == torch.float32
            and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


def _onednn_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x (..., in) through oneDNN's linear on a weight packed by `_reorder_linear_weight` (out, in)."""
    return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")


@torch.library.custom_op("moodpo::packed_linear", mutates_args=())
def packed_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """`_onednn_linear` as a custom op, so that a compiled graph calls it as it is (inductor cannot
    lower the oneDNN op on a weight that is a graph input rather than a frozen constant)."""
    return _onednn_linear(x, w)


@packed_linear.register_fake
def _(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x.new_empty(*x.shape[:-1], w.shape[0])


def fp16_available(device: torch.device, dtype: torch.dtype) -> bool:
    """True where the snapshot's matrices can be stored in float16 for fbgemm's fp16 GEMM (`_mm`): a CPU
    snapshot in float32 with torch's fbgemm engine, unless MOODPO_FP16=0."""
    return (os.environ.get("MOODPO_FP16", "1") != "0" and device.type == "cpu" and dtype == torch.float32
            and "fbgemm" in torch.backends.quantized.supported_engines
            and hasattr(torch.ops.quantized, "linear_prepack_fp16"))


def _mm(x: torch.Tensor, w, layout: str) -> torch.Tensor:
    """x (..., in) times a snapshot matrix in one of three layouts (`FastSampler.layout`):
    - "plain": (in, out) in the snapshot's dtype, `x @ w`;
    - "onednn": oneDNN's packed (out, in) float32. On the AVX2 CPU measured it ran a decode step's
      matmuls up to 1.9x faster than `x @ w` at 2-16 rows (MKL's small-batch sgemm), no slower at 1 or 256;
    - "fp16": fbgemm's packed float16 weight; x stays float32, the products accumulate in float32 (the
      weights are rounded to float16, nothing else). Half the bytes a token: on the same CPU 1.6-2.4x
      oneDNN's linear at 1-2 rows, 1.0-1.3x at 64, about even from 512 (BENCHMARKS.md).
    """
    if layout == "plain":
        return x @ w
    if layout == "fp16":
        return torch.ops.quantized.linear_dynamic_fp16(x, w)
    if torch.compiler.is_compiling():
        return packed_linear(x, w)
    return _onednn_linear(x, w)  # eagerly without the custom op's dispatch


def _unwrap(model):
    """The transformers model under a peft or accelerate wrapper."""
    model = getattr(model, "module", model)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def supports(model) -> bool:
    """True for Llama-architecture causal LMs with default RoPE and no biases, whose LoRA (if any)
    the sampler can apply: none on the embedding, and none on the head of a gated model."""
    net = _unwrap(model)
    cfg = getattr(net, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "llama":
        return False
    rope = getattr(cfg, "rope_parameters", None) or {}
    if len(getattr(net.model.embed_tokens, "lora_embedding_A", {})):
        return False
    if gate_of(model) is not None and len(getattr(net.lm_head, "lora_A", {})):
        return False
    return (rope.get("rope_type", "default") == "default" and not getattr(cfg, "attention_bias", False)
            and not getattr(cfg, "mlp_bias", False) and getattr(cfg, "hidden_act", "silu") == "silu")


def _weight(module, adapters: bool = True) -> torch.Tensor:
    """A linear layer's effective weight (out, in): the base weight plus active, unmerged LoRA deltas."""
    base = getattr(module, "base_layer", None)
    if base is None:
        return module.weight.detach()
    weight = base.weight.detach()
    if not adapters or getattr(module, "disable_adapters", False) or getattr(module, "merged", False):
        return weight
    # Summed in float32 and rounded once, whatever precision the frozen base is stored in.
    weight = weight.float()
    for name in module.active_adapters:
        if name in getattr(module, "lora_A", {}):
            weight = weight + module.get_delta_weight(name).detach().float()
    return weight


def _rms(h: torch.Tensor, weight: torch.Tensor, eps: float, dtype: torch.dtype) -> torch.Tensor:
    """RMSNorm in float32, cast to the matmul dtype (one op: `F.rms_norm` is transformers' formula)."""
    return F.rms_norm(h, (h.shape[-1],), weight, eps).to(dtype)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(dtype)


def _decode_step(weights, cache: list[tuple[torch.Tensor, torch.Tensor]], token: torch.Tensor,
                 position: torch.Tensor, slot: torch.Tensor, keys_mask: torch.Tensor, inv_freq: torch.Tensor, *,
                 heads: int, kv_heads: int, head_dim: int, eps: float, dtype: torch.dtype,
                 layout: str = "plain") -> torch.Tensor:
    """One decode step with static shapes, the graph `compile=True` compiles: logits (B, V) of the
    next token after `token` (B, 1) at `position` (B, 1), its keys and values written into every
    layer's cache (B, kv_heads, L, head_dim) at `slot` (1,); keys_mask (B, L) the keys each row sees.

    The same computation as `FastSampler._forward` for one token, except that attention runs over
    all L cache slots (unwritten ones masked) instead of the first start + 1, so no shape changes
    from step to step. weights: (embed, layers, norm, lm_head) of the snapshot, passed as inputs
    so that a refreshed snapshot reuses the compiled graph; layout: the weights' (`_mm`).
    """
    embed, layers, norm, lm_head = weights
    b = token.shape[0]
    freqs = position.float()[..., None] * inv_freq                                  # (B, 1, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)[:, None]                                 # (B, 1, 1, hd)
    cos, sin = emb.cos(), emb.sin()
    mask = keys_mask[:, None, None, :]                                               # (B, 1, 1, L)
    h = F.embedding(token, embed)                                                    # (B, 1, D) float32
    for (w_in, w_qkv, w_o, w_post, w_gu, w_down), (k_cache, v_cache) in zip(layers, cache):
        qkv = _mm(_rms(h, w_in, eps, dtype), w_qkv, layout).view(b, 1, heads + 2 * kv_heads, head_dim).transpose(1, 2)
        qk = _rope(qkv[:, :heads + kv_heads].float(), cos, sin, dtype)                 # queries and keys at once
        qh = qk[:, :heads]
        k_cache.index_copy_(2, slot, qk[:, heads:])
        v_cache.index_copy_(2, slot, qkv[:, heads + kv_heads:])
        attn = F.scaled_dot_product_attention(qh, k_cache, v_cache, attn_mask=mask, enable_gqa=heads != kv_heads)
        h = h + _mm(attn.transpose(1, 2).reshape(b, 1, heads * head_dim), w_o, layout).float()
        gate, up = _mm(_rms(h, w_post, eps, dtype), w_gu, layout).chunk(2, dim=-1)
        h = h + _mm(F.silu(gate) * up, w_down, layout).float()
    return _mm(_rms(h, norm, eps, dtype)[:, -1], lm_head, layout).float()


class FastSampler:
    """Samples from a (possibly LoRA-wrapped) Llama model; call `refresh()` after its weights change.

    With `adapters=False` it snapshots the base model under the adapters: the DPO reference. A gated
    LoRA (`moodpo.gating`) is kept unmerged and needs its rows' weights (`gate_rows`) at each call.
    With `compile=True` each decode step of `generate` runs as one compiled graph (module docstring).
    With `half=True` a float32 snapshot on a CPU stores its matrices in float16 for fbgemm's fp16 GEMM
    (`_mm`; not with `compile`): the network with its weights rounded to float16, computed in float32.
    For sampling (the app, evaluation, the trainer's rollouts), not for the reference's log-probs.
    """

    def __init__(self, model, dtype: torch.dtype = torch.bfloat16, *, adapters: bool = True, compile: bool = False,
                 pack: bool = True, half: bool = False):
        if not supports(model):
            raise ValueError("FastSampler supports Llama-architecture models only")
        # A gated LoRA (moodpo.gating) has a different update in every row: its factors stay unmerged.
        self.gate = gate_of(model) if adapters else None
        self.model, self.dtype, self.adapters, self.pack, self.half = model, dtype, adapters, pack, half and not compile
        self._compiled = torch.compile(_decode_step, dynamic=False) if compile and self.gate is None else None
        cfg = _unwrap(model).config
        self.num_heads, self.num_kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.eps = cfg.rms_norm_eps
        theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
        self.inv_freq = 1.0 / theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)
        self._kept: dict[tuple, torch.Tensor] = {}
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Take a fresh snapshot of the model's weights (LoRA merged).

        Matrices that cannot have changed (no adapter, no gradient: the MLP and the head in LoRA
        training) are kept from the first snapshot, so a refresh re-merges only the adapted ones.
        """
        inner = _unwrap(self.model).model
        lm_head = _unwrap(self.model).lm_head
        dt = self.dtype
        kept = self._kept

        self.device = inner.embed_tokens.weight.device
        if self.half and fp16_available(self.device, dt):
            layout = "fp16"
        elif self.pack and onednn_available(self.device, dt):
            layout = "onednn"
        else:
            layout = "plain"
        self.layout = layout

        def fused(*modules) -> torch.Tensor:
            """The modules' weights stacked on the output axis in `dt`, in `self.layout` (`_mm`)."""
            key = (layout, *(id(m) for m in modules))
            frozen = all(getattr(m, "base_layer", None) is None and not m.weight.requires_grad for m in modules)
            if frozen and key in kept:
                return kept[key]
            merge = self.adapters and self.gate is None
            weight = torch.cat([_weight(m, merge) for m in modules]).to(dt)
            if layout == "fp16":
                weight = torch.ops.quantized.linear_prepack_fp16(weight.contiguous(), None)
            elif layout == "onednn":
                weight = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), PACK_BATCH)
            else:
                weight = weight.t().contiguous()
            if frozen:
                kept[key] = weight
            return weight

        def factors(*modules):
            """A gated snapshot's unmerged LoRA of the fused modules, or None: A (in, R), B (R, out)
            block-diagonal over the modules with the scaling folded in, and the ranks (r_i,) in order."""
            if self.gate is None:
                return None
            a_parts, blocks, ranks, col = [], [], [], 0
            for m in modules:
                out = (getattr(m, "base_layer", None) or m).weight.shape[0]
                if not (getattr(m, "disable_adapters", False) or getattr(m, "merged", False)):
                    for name in getattr(m, "active_adapters", []):
                        if name in getattr(m, "lora_A", {}):
                            a_parts.append(m.lora_A[name].weight.detach().float())          # (r, in)
                            blocks.append((m.lora_B[name].weight.detach().float().t() * m.scaling[name], col))
                            ranks.append(a_parts[-1].shape[0])
                col += out
            if not ranks:
                return None
            b = torch.zeros(sum(ranks), col, device=a_parts[0].device)
            row = 0
            for block, at in blocks:                                                   # (r, out) at column `at`
                b[row:row + len(block), at:at + block.shape[1]] = block
                row += len(block)
            return torch.cat(a_parts).t().to(dt).contiguous(), b.to(dt), ranks

        self.inv_freq = self.inv_freq.to(self.device)  # positions live on the model's device (CUDA too)
        self.embed = inner.embed_tokens.weight.detach().float()
        self.layers, self.lora = [], []
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.lora.append((factors(attn.q_proj, attn.k_proj, attn.v_proj), factors(attn.o_proj),
                              factors(mlp.gate_proj, mlp.up_proj), factors(mlp.down_proj)))
            self.layers.append((
                layer.input_layernorm.weight.detach().float(),
                fused(attn.q_proj, attn.k_proj, attn.v_proj),
                fused(attn.o_proj),
                layer.post_attention_layernorm.weight.detach().float(),
                fused(mlp.gate_proj, mlp.up_proj),
                fused(mlp.down_proj),
            ))
        self.norm = inner.norm.weight.detach().float()
        self.lm_head = fused(lm_head)

    @property
    def numerics(self) -> str:
        """The snapshot's matrices in words: "float16 weights, float32 matmuls", "float32 (oneDNN-packed
        weights)", or its dtype ("bfloat16")."""
        if self.layout == "fp16":
            return "float16 weights, float32 matmuls"
        dtype = str(self.dtype).removeprefix("torch.")
        return f"{dtype} (oneDNN-packed weights)" if self.layout == "onednn" else dtype

    @property
    def compiled(self) -> bool:
        """True while decode steps run compiled (compile=True and compilation has not failed)."""
        return self._compiled is not None

    def _rms(self, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return _rms(h, weight, self.eps, self.dtype)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        return _rope(x, cos, sin, self.dtype)

    def _step(self, token: torch.Tensor, position: torch.Tensor, slot: int, keys_mask: torch.Tensor,
              cache: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """`_decode_step` on this snapshot, compiled where it can be: logits (B, V)."""
        args = ((self.embed, self.layers, self.norm, self.lm_head), cache, token, position,
                torch.tensor([slot], device=self.device), keys_mask, self.inv_freq)
        kwargs = dict(heads=self.num_heads, kv_heads=self.num_kv_heads, head_dim=self.head_dim, eps=self.eps,
                      dtype=self.dtype, layout=self.layout)
        if self._compiled is not None:
            try:
                return self._compiled(*args, **kwargs)
            except Exception as e:  # no C++ compiler, an unsupported op, ...: decode eagerly from now on
                log.warning("compiling the decode step failed (%s: %s); decoding without compilation",
                            type(e).__name__, str(e).splitlines()[0] if str(e) else "")
                self._compiled = None
        # The step is idempotent (it writes the same keys to the same slot), so a failed compiled
        # call can be run again eagerly.
        return _decode_step(*args, **kwargs)

    def _gate_scales(self, batch: int) -> dict[tuple, torch.Tensor] | None:
        """g(w) of each of `batch` rows (or one for all) for each rank layout of the snapshot's factors,
        (batch or 1, 1, R) in `dtype`; None for an ungated snapshot. The rows' weights come from
        `moodpo.gating.gate_rows`."""
        if self.gate is None:
            return None
        self.gate.rows(batch)
        out = {}
        for layer in self.lora:
            for f in layer:
                if f is not None and tuple(f[2]) not in out:
                    scale = torch.cat([self.gate.scales(r) for r in f[2]], dim=-1)
                    out[tuple(f[2])] = scale[:, None].to(self.device, self.dtype)
        return out

    def _distinct(self, ids: torch.Tensor, mask: torch.Tensor, scales) -> tuple:
        """`distinct_prompts` of a batch (ids, mask, rows) plus the gate scales of the distinct rows:
        under a gate with a weight row per batch row, rows share a prompt pass only when their
        weights are equal too."""
        gates = self.gate.gates if scales is not None and len(self.gate.gates) == len(ids) > 1 else None
        unique_ids, unique_mask, rows = distinct_prompts(ids, mask, gates)
        if gates is not None:
            first = first_rows(rows, len(unique_ids))
            scales = {key: value[first] for key, value in scales.items()}
        return unique_ids, unique_mask, rows, scales

    def _new_cache(self, rows: int, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        shape = (rows, self.num_kv_heads, length, self.head_dim)
        return [(torch.zeros(shape, dtype=self.dtype, device=self.device),
                 torch.zeros(shape, dtype=self.dtype, device=self.device)) for _ in self.layers]

    def _prefill(self, ids: torch.Tensor, mask: torch.Tensor, length: int, scales: dict | None = None
                 ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Run left-padded prompts ids, mask (U, P); returns the last position's normed hidden states
        (U, D) and a cache of `length` >= P slots holding the prompts' keys and values at 0..P.

        Prompts run in groups of similar length (`length_groups`), each padded only to its own
        longest: a group's rows are the last L columns of the batch (left padding keeps every real
        token there), and its keys land in the same slots as in one padded pass. Attention never
        sees a padded key, so the result is that pass's, up to float rounding of a smaller matmul.
        """
        u, p = ids.shape
        cache = self._new_cache(u, length)
        hidden = torch.empty(u, self.embed.shape[1], device=self.device, dtype=self.dtype)
        lengths = mask.sum(-1)
        for group in length_groups(lengths.cpu().numpy()):
            rows = torch.as_tensor(group, device=self.device)
            width = max(1, int(lengths[rows].max()))
            g_ids, g_mask = ids[rows, p - width:], mask[rows, p - width:]
            g_scales = scales if scales is None else {k: v[rows] if len(v) == u else v for k, v in scales.items()}
            g_cache = self._new_cache(len(rows), width)
            positions = (g_mask.long().cumsum(-1) - 1).clamp(min=0)
            hidden[rows] = self._forward(g_ids, positions, 0, g_mask, g_cache, g_scales)[:, -1]
            for (k, v), (g_k, g_v) in zip(cache, g_cache):
                k[rows, :, p - width:p] = g_k
                v[rows, :, p - width:p] = g_v
        return hidden, cache

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, start: int, keys_mask: torch.Tensor,
                 cache: list[tuple[torch.Tensor, torch.Tensor]], scales: dict | None = None) -> torch.Tensor:
        """Run `ids` (B, q) at cache slots start..start+q; returns the final normed hidden states (B, q, D).

        keys_mask: (B, >= start+q) bool, the keys each row may attend to (padding excluded);
        scales: a gated snapshot's `_gate_scales()`, its rows aligned with ids' (or one for all).
        """
        def mm(x: torch.Tensor, w: torch.Tensor, lora) -> torch.Tensor:
            if lora is None:
                return _mm(x, w, self.layout)
            a, b, ranks = lora
            return _mm(x, w, self.layout) + ((x @ a) * scales[tuple(ranks)]) @ b

        b, q = ids.shape
        end = start + q
        nh, nkv, hd = self.num_heads, self.num_kv_heads, self.head_dim
        freqs = positions.float()[..., None] * self.inv_freq                       # (B, q, hd/2)
        emb = torch.cat([freqs, freqs], dim=-1)[:, None]                            # (B, 1, q, hd)
        cos, sin = emb.cos(), emb.sin()
        mask = keys_mask[:, None, None, :end].expand(b, 1, q, end)
        if q > 1:
            # Causal within the new tokens; each query also sees itself, so a padding query
            # never has every key masked (that would put NaNs into the cache).
            causal = torch.ones(q, end, dtype=torch.bool, device=ids.device).tril(start)
            itself = torch.arange(q, device=ids.device)[:, None] + start == torch.arange(end, device=ids.device)
            mask = (mask & causal) | itself
        h = F.embedding(ids, self.embed)                                            # (B, q, D) float32
        # An ungated snapshot's factors are all None.
        for (w_in, w_qkv, w_o, w_post, w_gu, w_down), (l_qkv, l_o, l_gu, l_down), (k_cache, v_cache) in zip(
                self.layers, self.lora, cache):
            heads = mm(self._rms(h, w_in), w_qkv, l_qkv).view(b, q, nh + 2 * nkv, hd).transpose(1, 2)
            qk = self._rope(heads[:, :nh + nkv].float(), cos, sin)                  # queries and keys at once
            qh = qk[:, :nh]
            k_cache[:, :, start:end] = qk[:, nh:]
            v_cache[:, :, start:end] = heads[:, nh + nkv:]
            attn = F.scaled_dot_product_attention(qh, k_cache[:, :, :end], v_cache[:, :, :end], attn_mask=mask,
                                                  enable_gqa=nh != nkv)
            h = h + mm(attn.transpose(1, 2).reshape(b, q, nh * hd), w_o, l_o).float()
            gate, up = mm(self._rms(h, w_post), w_gu, l_gu).chunk(2, dim=-1)
            h = h + mm(F.silu(gate) * up, w_down, l_down).float()
        return self._rms(h, self.norm)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return _mm(hidden, self.lm_head, self.layout).float()

    @torch.no_grad()
    def sequence_logps(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                       completion_mask: torch.Tensor) -> torch.Tensor:
        """Sum of log p(response token | prompt) over response tokens, (N,), as `sampling.sequence_logps`."""
        logits = self.completion_logits(prompt_ids, prompt_mask, completion_ids, completion_mask)
        return completion_logps(logits, completion_ids.to(self.device), completion_mask.to(self.device))

    @torch.no_grad()
    def completion_logits(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                          completion_mask: torch.Tensor) -> torch.Tensor:
        """Next-token logits (N, C, V) at each response position, after left-padded prompts (N, P) and
        the response tokens before it (N, C).

        Rows with the same prompt (a pair's chosen and rejected) share one pass over it: the
        prompt's keys and values are computed once and copied to each of its rows.
        """
        device = self.device
        prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
        completion_ids, completion_mask = completion_ids.to(device), completion_mask.to(device)
        p, c = prompt_ids.shape[1], completion_ids.shape[1]
        scales = self._gate_scales(len(prompt_ids))
        ids, mask, rows, prompt_scales = self._distinct(prompt_ids, prompt_mask.bool(), scales)
        hidden, cache = self._prefill(ids, mask, p + c, prompt_scales)
        keys_mask = torch.zeros(len(ids), p + c, dtype=torch.bool, device=device)
        keys_mask[:, :p] = mask
        first = self._logits(hidden)[rows]                                                  # (N, V)
        logits = first[:, None]
        if c > 1:
            cache = [(k[rows], v[rows]) for k, v in cache]
            keys_mask = keys_mask[rows]
            keys_mask[:, p:] = completion_mask.bool()
            positions = mask.long().sum(-1)[rows, None] + torch.arange(c - 1, device=device)
            hidden = self._forward(completion_ids[:, :-1], positions, p, keys_mask, cache, scales)  # (N, C-1, D)
            logits = torch.cat([logits, self._logits(hidden)], dim=1)                       # (N, C, V)
        return logits

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
                 eos_token_ids: Sequence[int], pad_token_id: int, min_new_tokens: int = 0, do_sample: bool = True,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, streamer=None,
                 generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
        """Sample continuations of left-padded prompts (B, P); returns the new tokens (B, <= max_new_tokens).

        Rows that finished are padded with `pad_token_id`; generation stops when every row has
        emitted an EOS. `streamer.put` gets the prompt once, then each step's (B,) tokens.
        `generators` (one per row) give each row its own random stream, so a row draws the same
        numbers whatever else is in the batch; without them rows share torch's global RNG.
        """
        b, p = input_ids.shape
        device = self.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device).bool()
        total = p + max_new_tokens
        static = self._compiled is not None
        scales = self._gate_scales(b)
        if static:  # one compiled step serves every call whose cache rounds up to the same length
            total = -(-total // STATIC_LENGTH) * STATIC_LENGTH
        keys_mask = torch.zeros(b, total, dtype=torch.bool, device=device)
        keys_mask[:, :p] = attention_mask
        next_position = attention_mask.long().sum(-1, keepdim=True)                 # (B, 1)
        eos = torch.as_tensor(list(eos_token_ids), device=device)
        out = torch.full((b, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
        done = torch.zeros(b, dtype=torch.bool, device=device)
        if streamer is not None:
            streamer.put(input_ids.cpu())
        # Rows with the same prompt (the samples of one prompt) share one prefill.
        unique_ids, unique_mask, rows, prompt_scales = self._distinct(input_ids, attention_mask, scales)
        hidden, cache = self._prefill(unique_ids, unique_mask, total, prompt_scales)
        logits = self._logits(hidden)[rows]
        if not torch.equal(rows, torch.arange(b, device=device)):  # unique rows come sorted
            cache = [(k[rows], v[rows]) for k, v in cache]
        steps = 0
        for t in range(max_new_tokens):
            if t < min_new_tokens and len(eos):
                logits[:, eos] = float("-inf")
            token = _sample(logits, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
                            generators=generators)
            token = torch.where(done, torch.full_like(token, pad_token_id), token)
            out[:, t] = token
            steps = t + 1
            if streamer is not None:
                streamer.put(token.cpu())
            done |= torch.isin(token, eos)
            if t + 1 == max_new_tokens or bool(done.all()):
                break
            keys_mask[:, p + t] = True
            if static:
                logits = self._step(token[:, None], next_position + t, p + t, keys_mask, cache)
            else:
                logits = self._logits(self._forward(token[:, None], next_position + t, p + t, keys_mask, cache,
                                                    scales)[:, -1])
        if streamer is not None:
            streamer.end()
        return out[:, :steps]


def _sample(logits: torch.Tensor, *, do_sample: bool, temperature: float, top_k: int, top_p: float,
            generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
    """One token per row from (B, V) logits, in transformers' order of warpers."""
    if not do_sample:
        return logits.argmax(-1)
    if temperature != 1.0:
        logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if generators is None:
        u = torch.rand(logits.shape[0], 1, device=logits.device, dtype=logits.dtype)
    else:
        u = torch.cat([torch.rand(1, 1, generator=g, dtype=logits.dtype).to(logits.device) for g in generators])
    if top_p >= 1.0:
        return _draw(logits, u)
    token = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
    near = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
    if logits.shape[-1] > TOP_P_CANDIDATES:
        values, index = torch.topk(logits, TOP_P_CANDIDATES, dim=-1)                   # (B, K) descending
        values = values - logits.logsumexp(-1, keepdim=True)                            # log-probs
        near = values.exp().sum(-1) >= top_p
        if near.any():
            token[near] = _draw_top_p_candidates(values[near], index[near], top_p, u[near])
    far = ~near
    if far.any():
        token[far] = _draw(_top_p_mask(logits[far], top_p), u[far])
    return token


# Top-p looks for its nucleus among this many most likely tokens first (a partial selection instead
# of sorting the 49k-token vocabulary, 4.6 ms a step on the CPU measured); a row whose nucleus is
# larger takes the full sort.
TOP_P_CANDIDATES = 1024


def _top_p_mask(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """transformers' TopPLogitsWarper: the smallest tokens whose mass is at most 1 - top_p masked."""
    sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
    cumulative = sorted_logits.softmax(-1).cumsum(-1)
    remove = cumulative <= 1 - top_p
    remove[..., -1] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def _draw_top_p_candidates(logps: torch.Tensor, index: torch.Tensor, top_p: float, u: torch.Tensor) -> torch.Tensor:
    """`_draw(_top_p_mask(logits))` for rows whose K most likely tokens hold at least top_p of the
    mass, from those alone: logps, index (B, K) their log-probs (descending) and token ids. Every
    token outside them is masked (their mass, 1 - sum, is at most 1 - top_p), and the mask inside
    follows the same cumulative sum from the least likely token; the draw walks the kept tokens in
    vocabulary order, as `_draw` does, so a row draws the same token either way up to float rounding.
    """
    probs = logps.exp()
    outside = 1 - probs.sum(-1, keepdim=True)
    cumulative = outside + probs.flip(-1).cumsum(-1)                                  # from the least likely
    remove = (cumulative <= 1 - top_p).flip(-1)
    remove[..., 0] = False                                                             # never the most likely
    by_id = index.argsort(-1)
    kept = logps.masked_fill(remove, float("-inf")).gather(-1, by_id)
    return index.gather(-1, by_id).gather(-1, _draw(kept, u)[:, None]).squeeze(-1)


def _draw(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The index each row's uniform u (B, 1) picks by inverse CDF over softmax(logits) (B, V): the
    same distribution as torch.multinomial, whose exponential-race implementation costs about 13 ms
    a step for 16 rows of a 49k vocabulary on this CPU."""
    cdf = logits.softmax(-1).cumsum(-1)
    return torch.searchsorted(cdf, u * cdf[:, -1:]).squeeze(-1).clamp(max=cdf.shape[-1] - 1)
