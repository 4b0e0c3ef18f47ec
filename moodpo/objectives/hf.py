"""`hf:<hub id or local path>[?format=chat|pair|hh]`: any sequence-classification reward model.

Each reward model was trained on its own input format, so the (prompt, response) pair is
rendered the way the model expects. Unless `?format=` says otherwise it is detected:

- `chat`: the tokenizer has a chat template (e.g. Skywork/Llama reward models): the user and
  assistant messages go through `tokenizer.apply_chat_template`.
- `pair`: the model is an encoder (its model type has a masked-LM head: BERT, RoBERTa,
  DeBERTa, ...; e.g. OpenAssistant/reward-model-deberta-v3-large-v2): the tokenizer's text-pair
  encoding, `tokenizer(prompt, response)`.
- `hh`: anything else (decoders without a chat template, e.g.
  Ray2333/gpt2-large-helpful-reward_model): Anthropic HH text
  "\\n\\nHuman: {prompt}\\n\\nAssistant: {response}".

Score: with one output label, its logit. With several, the log-odds of the last label,
`logit[-1] - logsumexp(logit[:-1])`, which for a binary [bad, good] classifier is
`logit_good - logit_bad`; reward classifiers put the positive class last by convention.

Inputs longer than the model allows lose tokens from the left (for pairs, from the longer of
the two), so the end of the response, where decoder reward models read their score, is kept.
A tokenizer without a pad token (GPT-2) pads with its EOS token, and the model's
`pad_token_id` is set to match, which decoder classifiers need to find the last real token.

Only config.json is read when the objective is created (so a wrong name fails at once); weights
load on first call, in eval mode, on CUDA when available.
"""

import threading
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np

from moodpo.errors import MoodpoError
from moodpo.models import hub_offline
from moodpo.objectives.base import Objective

FORMATS = ("chat", "pair", "hh")
HH_TEMPLATE = "\n\nHuman: {prompt}\n\nAssistant: {response}"
BATCH_SIZE = 8


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or source.count("/") > 1 or "\\" in source


def detect_format(tokenizer, config) -> str:
    """'chat', 'pair' or 'hh' for a reward model's tokenizer and config; see the module doc."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if getattr(tokenizer, "chat_template", None):
        return "chat"
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "pair"
    return "hh"


class HFRewardModel(Objective):
    """A `transformers` sequence-classification reward model as an objective."""

    def __init__(self, spec: str):
        self.name = "hf:" + spec
        source, _, query = spec.partition("?")
        params = parse_qs(query, keep_blank_values=True)
        unknown = set(params) - {"format"}
        if unknown:
            raise MoodpoError(f"objective {self.name!r}: unknown option(s) {sorted(unknown)}; only ?format= is supported")
        self.format = params.get("format", [None])[-1]
        if self.format is not None and self.format not in FORMATS:
            raise MoodpoError(f"objective {self.name!r}: format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        self.source = self._resolve(source.strip())
        self.config = self._load_config()
        self.description = f"reward model {source}"
        self._lock = threading.Lock()
        self._model = None

    def _resolve(self, source: str) -> str:
        path = Path(source).expanduser()
        if path.is_dir():
            return str(path)
        if not source or _looks_like_path(source):
            raise MoodpoError(f"objective {self.name!r}: no such directory {source!r}")
        return source

    def _load_config(self):
        from transformers import AutoConfig

        offline = hub_offline()
        try:
            config = AutoConfig.from_pretrained(self.source, local_files_only=offline)
        except (OSError, ValueError) as e:
            if Path(self.source).is_dir():
                why = "the folder holds no Hugging Face model config"
            elif offline:
                why = "not a local folder and not in the Hugging Face cache, and HF_HUB_OFFLINE is set"
            else:
                why = f"could not fetch it from the Hugging Face hub ({str(e).splitlines()[0][:120]})"
            raise MoodpoError(f"objective {self.name!r}: {why}") from None
        archs = config.architectures or []
        if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            raise MoodpoError(
                f"objective {self.name!r}: {archs[0]} is not a sequence-classification reward model"
            )
        return config

    def _load(self):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        with self._lock:
            if self._model is None:
                offline = hub_offline()
                tokenizer = AutoTokenizer.from_pretrained(self.source, local_files_only=offline)
                model = AutoModelForSequenceClassification.from_pretrained(self.source, local_files_only=offline)
                if tokenizer.pad_token is None:
                    if tokenizer.eos_token is None:
                        raise MoodpoError(f"objective {self.name!r}: tokenizer has neither a pad nor an EOS token")
                    tokenizer.pad_token = tokenizer.eos_token
                model.config.pad_token_id = tokenizer.pad_token_id
                tokenizer.truncation_side = "left"
                self.device = "cuda" if torch.cuda.is_available() else "cpu"
                self.tokenizer = tokenizer
                self.format = self.format or detect_format(tokenizer, model.config)
                self.max_length = self._max_length(tokenizer, model.config)
                self._model = model.to(self.device).eval()
        return self._model

    @staticmethod
    def _max_length(tokenizer, config) -> int:
        limits = [tokenizer.model_max_length] + [
            getattr(config, a, None) for a in ("max_position_embeddings", "n_positions")
        ]
        # Tokenizers without a limit report a huge sentinel (int(1e30)).
        limits = [n for n in limits if isinstance(n, int) and 0 < n < 1_000_000]
        return min(limits, default=512)

    def _encode(self, prompts: list[str], responses: list[str]):
        tok = self.tokenizer
        kwargs = dict(return_tensors="pt", padding=True, truncation=True, max_length=self.max_length)
        if self.format == "pair":
            return tok(prompts, responses, **kwargs)
        if self.format == "chat":
            texts = [
                tok.apply_chat_template(
                    [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
                )
                for p, r in zip(prompts, responses)
            ]
            kwargs["add_special_tokens"] = False  # the template already holds them
        else:
            texts = [HH_TEMPLATE.format(prompt=p, response=r) for p, r in zip(prompts, responses)]
        return tok(texts, **kwargs)

    def score(self, prompts, responses):
        import torch

        model = self._load()
        # Length-sorted batches waste less compute on padding.
        order = np.argsort([len(p) + len(r) for p, r in zip(prompts, responses)], kind="stable")
        out = np.empty(len(prompts), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(order), BATCH_SIZE):
                idx = order[start : start + BATCH_SIZE]
                batch = self._encode([prompts[i] for i in idx], [responses[i] for i in idx]).to(self.device)
                logits = model(**batch).logits.float()
                if logits.shape[-1] == 1:
                    scores = logits[:, 0]
                else:
                    scores = logits[:, -1] - torch.logsumexp(logits[:, :-1], dim=-1)
                out[idx] = scores.cpu().numpy()
        return out
