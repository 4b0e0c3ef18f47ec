"""CLI commands beyond `train`: each adds a subparser and a handler.

    python -m moodpo eval --run runs/default [--grid 11] [--prompts eval] [--limit N] [--out DIR]
    python -m moodpo eval --run base:smollm2-135m --objectives helpfulness harmlessness
    python -m moodpo train-soups --config configs/soups.yaml [--field value ...]
    python -m moodpo train-ric --config configs/baselines/ric.yaml    (train-rl: configs/baselines/rl.yaml)
    python -m moodpo card runs/shipped [RUN ...]      (model cards of every adapter under each folder)
    python -m moodpo compare runs/default runs/soups runs/base-smollm2-135m [--out compare] [--ref V V]
    python -m moodpo sweep --config configs/default.yaml --alpha 0.3 1 3 [--grid 11] [--limit N]
    python -m moodpo steer-report --run runs/default --weights "1,0" "0.5,0.5" "0,1" [--limit 5]
    python -m moodpo objectives --model smollm2-135m --objectives helpfulness harmlessness conciseness
    python -m moodpo make-study --config configs/studies/demo.yaml [--data data] [--runs DIR] [--field value ...]
    python -m moodpo studies [--data data]
    python -m moodpo votes-report [--study ID|NAME] [--out DIR]
    python -m moodpo votes-export --study ID|NAME --format csv|jsonl|trl --out PATH [--question overall]
    python -m moodpo close-study --study ID|NAME        (open-study reopens it)
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import logging
import os
import time
from pathlib import Path

import numpy as np

from moodpo.data import SPLITS, tuning_split
from moodpo.errors import MoodpoError
from moodpo.runs import CONFIG_FILE, EVAL_DIR, SOUPS_FILE, atomic_write, describe_source, run_of_checkpoint
from moodpo.sampling_settings import MAX_NEW_TOKENS, TEMPERATURE
from moodpo.weights import EVAL_GRID

log = logging.getLogger(__name__)


def _positive(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {value}")
        return value
    return parse


def _settings(args):
    from moodpo.sampling_settings import GenerationSettings

    if args.temperature <= 0:
        raise MoodpoError(f"--temperature must be > 0, got {args.temperature}")
    return GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                              do_sample=not args.greedy)


def _add_generation_args(p: argparse.ArgumentParser, *, prefix: str = "") -> None:
    p.add_argument(f"--{prefix}seed", type=int, default=0, help="generation seed (same seed, same draw)")
    p.add_argument(f"--{prefix}max_new_tokens", type=_positive("max_new_tokens"), default=MAX_NEW_TOKENS,
                   help="longest response in tokens")
    p.add_argument(f"--{prefix}temperature", type=float, default=TEMPERATURE, help="sampling temperature")
    p.add_argument(f"--{prefix}greedy", action="store_true", help="greedy decoding instead of sampling")


def _load(spec: str, objectives=None):
    """A policy on the GPU when there is one."""
    import torch

    from moodpo.policy import load_policy

    policy = load_policy(spec, objectives=objectives)
    if torch.cuda.is_available():
        policy.model.to("cuda")
    return policy


def _default_out(spec: str) -> Path:
    from moodpo.eval.evaluate import sanitize

    if spec.startswith("base:") or spec == "base":
        return Path("runs") / f"base-{sanitize(Path(spec.partition(':')[2] or 'default').name)}" / EVAL_DIR
    p = Path(spec)
    if describe_source(p) == "checkpoint":
        return run_of_checkpoint(p) / f"{EVAL_DIR}-{p.name}"
    return p / EVAL_DIR


def _run_prompt_source(spec: str) -> str:
    """The prompt source a run (checkpoint, soups set) trained on; builtin for the base model."""
    import json

    from moodpo.config import read_yaml

    p = Path(spec)
    if spec.startswith("base:") or spec == "base" or not p.exists():
        return "builtin"
    kind = describe_source(p)
    if kind == "soups":
        meta = json.loads((p / SOUPS_FILE).read_text())
        p = p / meta["runs"][meta["objectives"][0]]
    elif kind == "checkpoint":
        p = run_of_checkpoint(p)
    elif kind == "adapter":
        p = p.parent
    config = p / CONFIG_FILE
    return str(read_yaml(config).get("prompts", "builtin")) if config.is_file() else "builtin"


def load_eval_prompts(source: str, split: str, *, limit: int | None = None, categories=None) -> list:
    """The prompts of an evaluation: the split, then only the given categories, then the first `limit`."""
    from moodpo.data import filter_categories, load_prompts

    prompts = load_prompts(source, split, seed=0)
    if categories:
        prompts = filter_categories(prompts, categories, f"{source} ({split})")
    return prompts[:limit] if limit else prompts


def run_eval(spec: str, *, grid: int, split: str = "eval", source: str | None = None, limit: int | None = None,
             categories=None, objectives=None, settings=None, seed: int = 0, samples: int = 1, batch_size: int = 64,
             system: str | None = None, out: str | Path | None = None):
    """Load a policy, evaluate it on a simplex grid, write the eval folder; returns (result, out)."""
    from moodpo.eval.evaluate import evaluate_policy, write_eval
    from moodpo.objectives import get_objective
    from moodpo.weights import simplex_grid

    if grid < 1:
        raise MoodpoError(f"--grid must be >= 1, got {grid}")
    source = source or _run_prompt_source(spec)
    prompts = load_eval_prompts(source, split, limit=limit, categories=categories)
    base = spec.startswith("base:") or spec == "base"
    policy = _load(spec, objectives if base else None)
    scorers = [get_objective(o) for o in (objectives or policy.objectives)]
    weights = simplex_grid(policy.num_objectives, grid)
    result = evaluate_policy(policy, scorers, prompts, weights, settings=settings, seed=seed,
                             samples_per_prompt=samples, batch_size=batch_size, system=system,
                             meta={"grid": grid, "prompts": {"source": source, "split": split, "count": len(prompts),
                                                             **({"categories": list(categories)} if categories else {})}})
    out = Path(out) if out else _default_out(spec)
    write_eval(result, out)
    return result, out


def _summary_line(result, out: Path) -> str:
    s = result.summary()

    def per_objective(measure: dict, key: str) -> str:
        return ", ".join(f"{o}={v[key]:.2f}" if v[key] is not None else f"{o}=n/a" for o, v in measure.items())

    return (f"{result.system}: {len(result.weights)} weights x {len(result.prompts)} prompts in "
            f"{result.meta['wall_seconds']:.1f}s; hypervolume {s['hypervolume']['value']:.4f}, "
            f"steerability (spearman) {per_objective(s['steerability'], 'spearman')}, "
            f"interior share {per_objective(s['interior_share'], 'share')}, "
            f"mean length {s['length']['mean']:.1f} -> {out}")


def cmd_eval(args: argparse.Namespace) -> int:
    result, out = run_eval(args.run, grid=args.grid, split=args.prompts, source=args.source, limit=args.limit,
                           categories=args.categories, objectives=args.objectives, settings=_settings(args), seed=args.seed,
                           samples=args.samples, batch_size=args.batch_size, system=args.name, out=args.out)
    print(_summary_line(result, out))
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from moodpo.eval.evaluate import find_eval_dir, load_eval, rescore, write_eval

    source, out = find_eval_dir(args.eval), Path(args.out)
    if out.resolve() == source.resolve():
        raise MoodpoError(f"--out {out} is the evaluation being rescored; choose another folder so the old scores stay")
    old = load_eval(source)
    result = rescore(old, args.objectives)
    write_eval(result, out)
    before, after = old.points.mean(axis=0), result.points.mean(axis=0)
    print(f"{result.system}: {result.sample_lengths.size} responses rescored -> {out}; mean score "
          + ", ".join(f"{o} {b:.3f} -> {n} {a:.3f}" if n != o else f"{o} {b:.3f} -> {a:.3f}"
                      for o, n, b, a in zip(old.objectives, result.objectives, before, after)))
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from moodpo.cards import write_cards

    for path in args.runs:
        for card in write_cards(path):
            print(card)
    return 0


def _config_and_overrides(args, skip=()):
    from moodpo.cli_args import overrides
    from moodpo.config import load_config

    return load_config(args.config, overrides(args, skip=skip))


def train_baseline(config) -> int:
    """Train the baseline config.method names (soups, ric or rl); returns the exit code."""
    if config.method == "soups":
        from moodpo.eval.evaluate import append_training_eval
        from moodpo.train.baselines import train_soups

        meta = train_soups(config, evaluate=append_training_eval)
        runs = ", ".join(f"{o} -> {d}" for o, d in meta["runs"].items())
        print(f"soups {meta['status']}: {config.output_dir} ({runs})")
        return 130 if meta["status"] == "interrupted" else 0
    if config.method == "ric":
        from moodpo.train.ric import train_ric as method_train
    elif config.method == "rl":
        from moodpo.train.rl import train_rl as method_train
    else:
        raise MoodpoError(f"{config.method} is not a baseline; train it with `python -m moodpo train`")
    result = method_train(config)
    print(f"{config.method} {result.status} at step {result.step}: {result.run_dir}")
    return 0


def cmd_train_method(args: argparse.Namespace) -> int:
    """train-soups, train-ric, train-rl: the config with its method set by the command."""
    from moodpo.cli_args import overrides
    from moodpo.config import load_config

    return train_baseline(load_config(args.config, {**overrides(args, skip=("method",)), "method": args.method}))


def _compare(paths, out, names=None, legend_title="system", ref=None):
    from moodpo.eval.evaluate import format_compare, write_compare

    results = [_load_system(p) for p in paths]
    table, details = write_compare(results, out, names, legend_title=legend_title, ref=ref)
    print(format_compare(table))
    point = ", ".join(f"{o}={v:.4g}" for o, v in zip(details["objectives"], details["reference_point"]))
    print(f"hypervolume reference point ({point}): {details['reference']}")
    print(f"reference point and overlaid fronts: {Path(out) / 'compare.json'}, {Path(out) / 'compare.html'}; "
          f"declines by prompt category: {Path(out) / 'declines.html'}")
    return table


def _load_system(spec: str | Path):
    """An evaluation, or several joined by '+' (one per training seed) pooled into one system."""
    from moodpo.eval.evaluate import load_eval, pool_seeds

    if "+" not in str(spec) or Path(spec).exists():
        return load_eval(spec)
    parts = [load_eval(p) for p in str(spec).split("+")]
    return pool_seeds(parts, f"{parts[0].system} ({len(parts)} seeds)")


def _ref_values(texts) -> list[float] | None:
    """--ref's values as finite floats (their count is checked against the objectives later)."""
    if texts is None:
        return None
    try:
        values = [float(t) for t in texts]
    except ValueError:
        raise MoodpoError(f"--ref values must be numbers, got {' '.join(texts)}") from None
    if not np.isfinite(values).all():
        raise MoodpoError(f"--ref values must be finite, got {' '.join(texts)}")
    return values


def cmd_compare(args: argparse.Namespace) -> int:
    if args.names and len(args.names) != len(args.runs):
        raise MoodpoError(f"--names needs {len(args.runs)} names (one per run), got {len(args.names)}")
    _compare(args.runs, args.out, args.names, ref=_ref_values(args.ref))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from moodpo.eval.evaluate import append_training_eval
    from moodpo.train.trainer import train

    base = _config_and_overrides(args, skip=("alpha", "grid", "limit", "out", "eval_seed", "eval_max_new_tokens",
                                             "eval_temperature", "eval_greedy", "eval_categories"))
    alphas = args.alpha
    if any(not np.isfinite(a) or a <= 0 for a in alphas):
        raise MoodpoError(f"--alpha values must be > 0, got {alphas}")
    if len(set(alphas)) != len(alphas):
        raise MoodpoError(f"--alpha has duplicates: {alphas}")
    configs = [dataclasses.replace(base, alpha=float(a), output_dir=f"{base.output_dir}-alpha{a:g}") for a in alphas]
    for c in configs:  # check every folder before the first run trains
        run = Path(c.output_dir)
        if run.is_dir() and any(run.iterdir()) and not (c.resume or c.overwrite):
            raise MoodpoError(f"run folder {run} already holds a run; pass --resume or --overwrite, "
                              "or choose another --output_dir")
    settings = _settings(argparse.Namespace(max_new_tokens=args.eval_max_new_tokens,
                                            temperature=args.eval_temperature, greedy=args.eval_greedy))
    split = tuning_split(base.prompts)  # alpha is chosen from these, so not the reported eval prompts
    load_eval_prompts(base.prompts, split, categories=args.eval_categories)  # a bad category fails before training
    evals = []
    for a, c in zip(alphas, configs):
        result = train(c, evaluate=append_training_eval)
        if result.status != "finished":
            print(f"sweep {result.status} during alpha={a:g} at step {result.step}: {c.output_dir}")
            return 130 if result.status == "interrupted" else 1
        evaluated, out = run_eval(c.output_dir, grid=args.grid, split=split, source=c.prompts, limit=args.limit,
                                  categories=args.eval_categories, settings=settings, seed=args.eval_seed,
                                  system=f"alpha={a:g}")
        print(_summary_line(evaluated, out))
        evals.append(out)
    _compare(evals, args.out or f"{base.output_dir}-sweep", [f"alpha={a:g}" for a in alphas], legend_title="alpha")
    return 0


REPORT_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #ccc; padding: 0.6em; vertical-align: top; text-align: left; }
th { background: #f4f4f4; }
.prompt { background: #fafafa; width: 18%; }
.response { white-space: pre-wrap; }
.scores, .prefix { color: #666; font-size: 0.85em; margin-top: 0.5em; }
"""


def steer_report_html(title: str, prompts, weights, prefixes, responses, scores, objectives) -> str:
    """A page with one row per prompt and one column per weight vector; every model or user text is
    escaped. responses: [P][W] str; scores: (P, W, K)."""
    e = html.escape
    head = "".join(f"<th>{e(', '.join(f'{o}={w:.2f}' for o, w in zip(objectives, wv)))}"
                   f"<div class='prefix'>{e(prefix)}</div></th>" for wv, prefix in zip(weights, prefixes))
    body = []
    for i, prompt in enumerate(prompts):
        cells = [f"<td class='prompt'><b>{e(prompt.category)}</b> {e(prompt.id)}<div class='response'>"
                 f"{e(prompt.text)}</div></td>"]
        for j in range(len(weights)):
            score = ", ".join(f"{e(o)}={scores[i, j, k]:.3f}" for k, o in enumerate(objectives))
            cells.append(f"<td><div class='response'>{e(responses[i][j]) or '<i>(empty)</i>'}</div>"
                         f"<div class='scores'>{score}</div></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{REPORT_STYLE}</style></head><body><h1>{e(title)}</h1>"
            f"<p>Each column is one weight vector; the model saw the system prefix under it. Scores are the raw "
            f"objective scores of the response to the prompt without the prefix.</p>"
            f"<table><tr><th class='prompt'>prompt</th>{head}</tr>{''.join(body)}</table></body></html>\n")


def cmd_steer_report(args: argparse.Namespace) -> int:
    from moodpo.objectives import get_objective, score_all
    from moodpo.weights import parse_weights

    base = args.run.startswith("base:") or args.run == "base"
    policy = _load(args.run, args.objectives if base else None)
    weights = np.stack([parse_weights(w, policy.num_objectives) for w in args.weights])
    prompts = load_eval_prompts(args.source or _run_prompt_source(args.run), args.prompts, limit=args.limit,
                                categories=args.categories)
    scorers = [get_objective(o) for o in (args.objectives or policy.objectives)]
    if len(scorers) != policy.num_objectives:
        raise MoodpoError(f"{len(scorers)} objectives for a policy conditioned on {policy.num_objectives}")
    rows = [(i, j) for i in range(len(prompts)) for j in range(len(weights))]
    texts = policy.generate([prompts[i].text for i, _ in rows], weights[[j for _, j in rows]],
                            settings=_settings(args), seed=args.seed)
    scores = score_all(scorers, [prompts[i].text for i, _ in rows], texts).reshape(len(prompts), len(weights), -1)
    responses = [[texts[i * len(weights) + j] for j in range(len(weights))] for i in range(len(prompts))]
    page = steer_report_html(f"Steering report: {policy.name}", prompts, weights,
                             [policy.prefix(w) for w in weights], responses, scores, [s.name for s in scorers])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, page)
    print(f"{len(prompts)} prompts x {len(weights)} weight vectors -> {out}")
    return 0


def cmd_objectives(args: argparse.Namespace) -> int:
    """Sample from the base model, score with every objective, print their correlations."""
    from tqdm.auto import tqdm

    from moodpo.data import load_prompts
    from moodpo.eval.evaluate import batch_seed, format_table
    from moodpo.objectives import get_objective, objective_correlations, previous_version, score_all
    from moodpo.sampling import sample_responses

    if args.alpha <= 0 or not np.isfinite(args.alpha):
        raise MoodpoError(f"--alpha must be > 0, got {args.alpha}")
    scorers = [get_objective(o) for o in args.objectives]
    prompts = load_prompts(args.source, args.split, limit=args.limit, seed=0)
    policy = _load(f"base:{args.model}", [s.name for s in scorers])
    settings = _settings(args)
    rng = np.random.default_rng(args.seed)
    rows = [p for p in prompts for _ in range(args.samples)]
    # Each response gets its own weights (as in training), or no system prefix at all.
    weights = rng.dirichlet(np.full(len(scorers), args.alpha), size=len(rows))
    texts: list[str] = []
    t0 = time.perf_counter()
    with tqdm(total=len(rows), desc="sample", unit="resp") as bar:
        for b, start in enumerate(range(0, len(rows), args.batch_size)):
            chunk = rows[start:start + args.batch_size]
            if args.conditioning == "dirichlet":
                texts += policy.generate([p.text for p in chunk], weights[start:start + len(chunk)],
                                         settings=settings, seed=batch_seed(args.seed, b))
            else:
                import torch
                torch.manual_seed(batch_seed(args.seed, b))
                texts += sample_responses(policy.model, policy.tokenizer, [p.text for p in chunk], [None] * len(chunk),
                                          num_samples=1, max_new_tokens=settings.max_new_tokens,
                                          temperature=settings.temperature, top_p=settings.top_p,
                                          do_sample=settings.do_sample,
                                          max_prompt_tokens=settings.max_prompt_tokens).texts
            bar.update(len(chunk))
    rewards = score_all(scorers, [p.text for p in rows], texts)
    names = [s.name for s in scorers]
    table = objective_correlations(rewards, names, [p.category for p in rows])
    print(f"{len(rows)} responses ({len(prompts)} prompts x {args.samples}, {args.conditioning} conditioning) "
          f"sampled in {time.perf_counter() - t0:.1f}s; mean scores: "
          + ", ".join(f"{n}={m:.3f}" for n, m in zip(names, rewards.mean(0))))
    old_names = [previous_version(n) for n in names]
    if args.versions and all(old_names):
        # The same responses under the first definitions, to see what version 2 changed.
        old = score_all(old_names, [p.text for p in rows], texts)
        print("version 1 on the same responses: " + ", ".join(f"{n}={m:.3f}" for n, m in zip(old_names, old.mean(0))))
        old_table = objective_correlations(old, names, [p.category for p in rows])
        table = table.merge(old_table, on=["category", "objective_a", "objective_b", "n"], suffixes=("", "_v1"))
    print(format_table(table))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    return 0


def _store(args):
    from moodpo.human.votes import VoteStore

    return VoteStore(args.data)


def cmd_make_study(args: argparse.Namespace) -> int:
    from moodpo.human.study import STUDY_FIELDS, load_study_config, make_study

    spec = load_study_config(args.config, {k: v for k, v in vars(args).items() if k in STUDY_FIELDS})
    study = make_study(spec, args.data, runs_dir=args.runs)
    print(f"study {study.name!r} ({study.id}): {study.n_pairs} pairs ({len(spec.comparisons)} comparisons x "
          f"{study.n_pairs // len(spec.comparisons)} prompts), questions {', '.join(study.questions)}, "
          f"overlap {study.overlap} -> {_store(args).path}")
    return 0


def cmd_studies(args: argparse.Namespace) -> int:
    import pandas as pd

    from moodpo.eval.evaluate import format_table

    store = _store(args)
    rows = [{"id": s.id, "name": s.name, "status": s.status, "pairs": s.n_pairs, "overlap": s.overlap,
             "votes": store.count_votes(s.id), "questions": ",".join(s.questions), "created": s.created[:19]}
            for s in store.studies()]
    print(format_table(pd.DataFrame(rows)) if rows else f"no studies in {store.path} yet; create one with make-study")
    return 0


def _votes(args):
    """(votes frame, title) for --study, or for every study when it is not given."""
    from moodpo.human.votes import VoteError

    store = _store(args)
    study = store.find_study(args.study) if args.study else None
    frame = store.votes_frame(study.id if study else None)
    title = f"study {study.name}" if study else f"all studies in {store.path}"
    if frame.empty:
        raise VoteError(f"{title} has no votes yet; annotate in the app first")
    return frame, title


def cmd_votes_report(args: argparse.Namespace) -> int:
    from moodpo.eval.evaluate import format_table
    from moodpo.human.votestats import TABLE_TITLES, report, report_html

    frame, title = _votes(args)
    tables = report(frame, n_boot=args.n_boot, seed=args.seed, margin=args.margin)
    print(f"{title}: {frame['vote_id'].nunique()} votes by {frame['annotator_id'].nunique()} annotators on "
          f"{frame['pair_id'].nunique()} pairs")
    for name, table in tables.items():
        print(f"\n{TABLE_TITLES[name]}\n{format_table(table) if len(table) else '(none)'}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            atomic_write(out / f"{name}.csv", table.to_csv(index=False))
        atomic_write(out / "report.html", report_html(tables, f"Votes report: {title}"))
        print(f"\ntables and report.html -> {out}")
    return 0


def cmd_votes_export(args: argparse.Namespace) -> int:
    from moodpo.human.votes import export_csv, export_jsonl, export_preferences

    frame, title = _votes(args)
    if args.format == "trl":
        n = export_preferences(frame, args.out, question=args.question)
        print(f"{n} preference pairs on {args.question!r} (ties and both-bad left out) from {title} -> {args.out}")
    else:
        (export_csv if args.format == "csv" else export_jsonl)(frame, args.out)
        print(f"{len(frame)} rows ({frame['vote_id'].nunique()} votes) from {title} -> {args.out}")
    return 0


def cmd_set_study_status(args: argparse.Namespace) -> int:
    store = _store(args)
    study = store.find_study(args.study)
    (store.close_study if args.command == "close-study" else store.reopen_study)(study.id)
    print(f"study {study.name!r} ({study.id}) is {store.study(study.id).status}")
    return 0


def _add_study_fields(p: argparse.ArgumentParser) -> None:
    """One `--field` option per StudyConfig field but comparisons (structured: YAML only)."""
    from moodpo.cli_args import add_config_fields
    from moodpo.human.study import StudyConfig

    add_config_fields(p, StudyConfig, title="study config fields (override the YAML file)", skip=("comparisons",))


def _add_data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=os.environ.get("MOODPO_DATA", "data"),
                   help="data folder holding votes.sqlite (default: $MOODPO_DATA or data, as the app)")


def _add_votes_args(p: argparse.ArgumentParser) -> None:
    _add_data_arg(p)
    p.add_argument("--study", default=None, help="study id or name (default: every study)")


def _register_studies(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-study", help="pre-generate the pairs of a human preference study",
                       description="Generate and score every system's responses for a study config and store "
                                   "the pairs in <data>/votes.sqlite, ready for annotators in the app.")
    p.add_argument("--config", required=True, help="study YAML file (see configs/studies/)")
    _add_data_arg(p)
    p.add_argument("--runs", default=None, help="folder that relative policy paths are under (default: as written)")
    _add_study_fields(p)
    p.set_defaults(func=cmd_make_study)

    p = sub.add_parser("studies", help="list the human preference studies",
                       description="List the studies in <data>/votes.sqlite with their pairs and votes.")
    _add_data_arg(p)
    p.set_defaults(func=cmd_studies)

    p = sub.add_parser("votes-report", help="win rates, Bradley-Terry, human vs reward model and annotator agreement",
                       description="Analyse the votes of a study (or of all): print the tables and, with --out, "
                                   "write them as CSV with report.html.")
    _add_votes_args(p)
    p.add_argument("--out", default=None, help="folder for the CSV tables and report.html")
    p.add_argument("--n_boot", type=_positive("n_boot"), default=1000, help="bootstrap draws for the intervals")
    p.add_argument("--margin", type=float, default=0.0,
                   help="reward-model score difference below which the reward model calls a tie")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.set_defaults(func=cmd_votes_report)

    p = sub.add_parser("votes-export", help="export votes as CSV, JSONL or a TRL preference dataset",
                       description="Export the unblinded votes, or (--format trl) a preference dataset with "
                                   "prompt/chosen/rejected columns saved with datasets.save_to_disk.")
    _add_votes_args(p)
    p.add_argument("--format", required=True, choices=("csv", "jsonl", "trl"), help="what to write")
    p.add_argument("--out", required=True, help="file (csv, jsonl) or folder (trl) to write")
    p.add_argument("--question", default="overall", help="for trl: whose votes become preferences")
    p.set_defaults(func=cmd_votes_export)

    for name, what in (("close-study", "stop a study taking votes"), ("open-study", "reopen a closed study")):
        p = sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".")
        _add_data_arg(p)
        p.add_argument("--study", required=True, help="study id or name")
        p.set_defaults(func=cmd_set_study_status)


def _add_eval_source_args(p: argparse.ArgumentParser, limit_default=None) -> None:
    p.add_argument("--prompts", default="eval", choices=SPLITS,
                   help="split of the prompt source (eval for reported numbers, dev for choosing recipes)")
    p.add_argument("--source", default=None, help="prompt source (default: the run's, else builtin)")
    p.add_argument("--limit", type=_positive("limit"), default=limit_default, help="use the first N prompts")
    p.add_argument("--categories", nargs="+", default=None,
                   help="only prompts of these categories, e.g. borderline harmful (before --limit)")
    p.add_argument("--objectives", nargs="+", default=None,
                   help="scoring objectives, position k standing for the policy's k-th (default: the run's; "
                        "for base: helpfulness harmlessness)")


def _add_eval_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="sweep a weight grid: Pareto front, steerability, generations",
                       description="Evaluate a run, checkpoint, soups set or base:MODEL on a simplex grid of weights.")
    p.add_argument("--run", required=True, help="run folder, checkpoint, soups folder or base:MODEL")
    p.add_argument("--grid", type=int, default=EVAL_GRID,
                   help=f"points per simplex edge (default {EVAL_GRID}: 0, 0.1, ..., 1; the interior share needs "
                        "4 or more)")
    _add_eval_source_args(p)
    p.add_argument("--out", default=None, help="output folder (default: <run>/eval, runs/base-<model>/eval)")
    p.add_argument("--samples", type=_positive("samples"), default=1, help="responses per prompt and weight")
    p.add_argument("--batch_size", type=_positive("batch_size"), default=64, help="responses per generate call")
    p.add_argument("--name", default=None, help="system name in tables and plots (default: the policy's)")
    _add_generation_args(p)
    p.set_defaults(func=cmd_eval)


def _add_rescore_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rescore", help="score an evaluation's responses again, after an objective changed",
                       description="Score the stored responses of an evaluation again with its objectives as "
                                   "they are defined now, without generating, and write a new eval folder "
                                   "(tables, front, summary) to --out.")
    p.add_argument("eval", help="eval folder, or a run folder holding eval/")
    p.add_argument("--out", required=True, help="output folder (not the one rescored)")
    p.add_argument("--objectives", nargs="+", default=None,
                   help="score with these objectives instead, one per column in order (e.g. helpfulness@v1 "
                        "conciseness@v1 to see an evaluation under the first definitions)")
    p.set_defaults(func=cmd_rescore)


def _add_card_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("card", help="write the model card (README.md) of each saved adapter",
                       description="Write <run>/adapter/README.md for every run with a saved adapter at or under "
                                   "each folder (a run, a soups set, runs/shipped), from its config.yaml, "
                                   "metrics.jsonl and the eval/summary.json there now; also set the adapter's "
                                   "base_model_name_or_path to the base model's hub id.")
    p.add_argument("runs", nargs="+", help="run folders, soups sets or folders holding runs")
    p.set_defaults(func=cmd_card)


BASELINE_COMMANDS = {
    "soups": ("train a Rewarded Soups baseline: one adapter per objective",
              "Train one adapter per objective (one-hot fixed weights) into --output_dir, then write soups.json there."),
    "ric": ("train a Rewards-in-Context baseline (needs trl)",
            "Sample a pool from the base model, score it, and fine-tune a LoRA adapter (TRL's SFTTrainer) on responses "
            "with their scores in the system message; optional online rounds. See docs/baselines.md."),
    "rl": ("train a prompt-conditioned RL baseline (needs trl)",
           "MO-ODPO's weight prefix and scalarised reward, optimised with TRL's GRPOTrainer on a LoRA adapter. "
           "See docs/baselines.md."),
}


def _add_baseline_commands(sub: argparse._SubParsersAction) -> None:
    from moodpo.cli_args import add_config_fields

    for method, (help_text, description) in BASELINE_COMMANDS.items():
        p = sub.add_parser(f"train-{method}", help=help_text, description=description + " The config's method is "
                           f"set to {method}.")
        p.add_argument("--config", help="YAML file with config fields (see configs/)")
        add_config_fields(p, skip=("method",))
        p.set_defaults(func=cmd_train_method, method=method)


def _add_compare_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare evaluated systems: hypervolume, dominance, steerability, win rate",
                       description="Each argument is an eval folder or a run folder with eval/. The first is the "
                                   "reference system for dominance and win rates. Join the evaluations of several training "
                                   "seeds with + to pool them into one system (their samples side by side).")
    p.add_argument("runs", nargs="+", help="eval folders or run folders holding eval/; A+B pools the evaluations "
                                           "of several training seeds into one system")
    p.add_argument("--out", default="compare", help="folder for compare.csv, compare.json, compare.html and declines.html")
    p.add_argument("--names", nargs="+", default=None, help="system names, one per run")
    p.add_argument("--ref", nargs="+", default=None, metavar="V",
                   help="hypervolume reference point, one value per objective (default: the objectives' floors "
                        "when all have one, else the worst mean minus 10%% of the span over the systems compared)")
    p.set_defaults(func=cmd_compare)


def _add_sweep_command(sub: argparse._SubParsersAction) -> None:
    from moodpo.cli_args import add_config_fields

    p = sub.add_parser("sweep", help="one run per alpha, evaluate each, compare",
                       description="Train one run per alpha (output_dir = <output_dir>-alpha<a>), evaluate each on "
                                   "the dev prompts of the prompt source (its eval prompts if it has no dev "
                                   "split), then compare them.", conflict_handler="resolve")
    p.add_argument("--config", help="YAML file with config fields (see configs/)")
    add_config_fields(p)
    p.add_argument("--alpha", type=float, nargs="+", required=True, help="Dirichlet alphas to sweep")
    p.add_argument("--grid", type=int, default=EVAL_GRID,
                   help=f"points per simplex edge of the eval grid (default {EVAL_GRID}: 0, 0.1, ..., 1)")
    p.add_argument("--limit", type=_positive("limit"), default=None, help="evaluate on the first N of those prompts")
    p.add_argument("--eval_categories", nargs="+", default=None,
                   help="evaluate only prompts of these categories, e.g. everyday borderline harmful (before --limit)")
    p.add_argument("--out", default=None, help="comparison folder (default: <output_dir>-sweep)")
    _add_generation_args(p, prefix="eval_")
    p.set_defaults(func=cmd_sweep)


def _add_steer_report_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("steer-report", help="responses side by side per weight vector, as an HTML page",
                       description="Generate for a fixed set of prompts at each weight vector and write a page "
                                   "with the responses side by side.")
    p.add_argument("--run", required=True, help="run folder, checkpoint, soups folder or base:MODEL")
    p.add_argument("--weights", nargs="+", required=True, help='weight vectors, e.g. "1,0" "0.5,0.5" "0,1"')
    _add_eval_source_args(p, limit_default=5)
    p.add_argument("--out", default="report.html", help="HTML file to write")
    _add_generation_args(p)
    p.set_defaults(func=cmd_steer_report)


def _add_objectives_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("objectives", help="how the objectives correlate on base-model samples",
                       description="Sample responses from the base model, score them with every objective and "
                                   "print Pearson/Spearman correlations, overall and per prompt category.")
    p.add_argument("--model", default="smollm2-135m", help="base model")
    p.add_argument("--objectives", nargs="+", default=["helpfulness", "harmlessness", "conciseness"])
    p.add_argument("--source", default="builtin", help="prompt source")
    p.add_argument("--split", default="eval", choices=SPLITS)
    p.add_argument("--limit", type=_positive("limit"), default=None, help="use the first N prompts")
    p.add_argument("--samples", type=_positive("samples"), default=4, help="responses per prompt")
    p.add_argument("--conditioning", default="dirichlet", choices=("dirichlet", "none"),
                   help="dirichlet: a prefix with w ~ Dir(alpha) per response; none: no system prefix")
    p.add_argument("--alpha", type=float, default=1.0, help="Dirichlet alpha for the conditioning weights")
    p.add_argument("--batch_size", type=_positive("batch_size"), default=32, help="responses per generate call")
    p.add_argument("--out", default=None, help="also write the correlation table as CSV")
    p.add_argument("--versions", action=argparse.BooleanOptionalAction, default=True,
                   help="also score the same responses with version 1 of the built-ins (helpfulness@v1, ...) "
                        "and print its correlations beside version 2's")
    _add_generation_args(p)
    p.set_defaults(func=cmd_objectives)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the non-training commands to the `moodpo` parser."""
    _add_eval_command(sub)
    _add_rescore_command(sub)
    _add_card_command(sub)
    _add_baseline_commands(sub)
    _add_compare_command(sub)
    _add_sweep_command(sub)
    _add_steer_report_command(sub)
    _add_objectives_command(sub)
    _register_studies(sub)
