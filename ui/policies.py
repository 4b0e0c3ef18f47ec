"""Which policies the app offers and how it loads them.

The picker's values are "base" or a path relative to the runs folder ("alpha-0.3",
"alpha-0.3/checkpoints/step-000050", "soups"). Every value that arrives from the browser or the
API is resolved here and must lie under the runs folder, so nothing else on disk can be loaded.

Loaded policies live in one process-wide `PolicyStore`: each loads once, on first use, and is
shared by every user; its own lock (Policy.lock) serialises generation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from moodpo.config import training_alpha
from moodpo.errors import MoodpoError
from moodpo.policy import Policy, load_policy
from moodpo.runs import (CHECKPOINT_DIR, CONFIG_FILE, SOUPS_FILE, checkpoint_step, checkpoints, final_adapter, find_runs,
                         has_final_adapter, is_checkpoint, is_run, is_soups, read_soups, run_of_checkpoint)
from ui.settings import MAX_OBJECTIVES, AppConfig

BASE = "base"


@dataclass(frozen=True)
class PolicyChoice:
    value: str
    label: str
    kind: str  # "base", "run", "checkpoint" or "soups"
    objectives: tuple[str, ...]


def read_run_config(run_dir: Path) -> dict:
    """A run's config.yaml as a plain dict ({} if unreadable): for labels, not for loading."""
    try:
        data = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _alpha_text(alpha) -> str:
    if isinstance(alpha, list):
        return "α=(" + ", ".join(f"{a:g}" for a in alpha) + ")"
    return f"α={alpha:g}" if isinstance(alpha, (int, float)) else ""


def list_policies(config: AppConfig) -> list[PolicyChoice]:
    """The base model, then every run (final adapter or latest checkpoint), its checkpoints and soups sets."""
    choices = [PolicyChoice(BASE, f"Base model · {config.model} (untrained)", "base", config.objectives)]
    root = config.runs_dir
    for rel, kind in find_runs(root):
        path = root / rel
        if kind == "soups":
            meta = read_soups(path)
            objectives = tuple(meta.get("objectives") or ())
            if objectives:
                choices.append(PolicyChoice(rel, f"{rel} · Rewarded Soups ({len(objectives)} adapters)", "soups",
                                            objectives))
            continue
        run = read_run_config(path)
        objectives = tuple(run.get("objectives") or ())
        if not objectives:
            continue
        method = run.get("method", "moodpo")
        alpha = _alpha_text(training_alpha(method, run.get("alpha", 1.0)))
        alpha = {"ric": "Rewards-in-Context", "rl": f"conditioned RL · {alpha}"}.get(method, alpha)  # name the baselines
        found = checkpoints(path)
        if has_final_adapter(path):
            done = f"final, step {checkpoint_step(found[-1])}" if found else "final"
            choices.append(PolicyChoice(rel, f"{rel} · {done} · {alpha}", "run", objectives))
        elif found:
            choices.append(PolicyChoice(rel, f"{rel} · latest checkpoint (step {checkpoint_step(found[-1])}) · {alpha}",
                                        "run", objectives))
        for ckpt in reversed(found):
            choices.append(PolicyChoice(f"{rel}/{CHECKPOINT_DIR}/{ckpt.name}",
                                        f"{rel} · checkpoint step {checkpoint_step(ckpt)} · {alpha}", "checkpoint", objectives))
    return choices


def resolve_under(root: Path, rel: str, what: str = "policy") -> Path:
    """root/rel, resolved; MoodpoError unless it exists and lies inside root (no traversal, no absolute paths)."""
    if not isinstance(rel, str) or not rel.strip() or "\x00" in rel:
        raise MoodpoError(f"choose a {what} from the list")
    root_path = Path(root).resolve()
    path = (root_path / rel).resolve()
    if Path(rel).is_absolute() or not path.is_relative_to(root_path) or path == root_path:
        raise MoodpoError(f"{what} {rel!r} is not under the runs folder; choose one from the list")
    if not path.exists():
        raise MoodpoError(f"{what} {rel!r} no longer exists (deleted, or a checkpoint rotated out by "
                          "save_total_limit); refresh the list and choose another")
    return path


def policy_spec(config: AppConfig, value: str) -> tuple[str, tuple[str, ...]]:
    """(spec for load_policy, objectives) for a picker value, without loading any weights.

    Raises MoodpoError for anything that is not a loadable run, checkpoint or soups set under the
    runs folder.
    """
    if value == BASE:
        return f"base:{config.model}", config.objectives
    path = resolve_under(config.runs_dir, value)
    if is_soups(path):
        meta = read_soups(path)
        objectives = tuple(meta.get("objectives") or ())
        members = meta.get("runs") if isinstance(meta.get("runs"), dict) else {}
        if not objectives or any(o not in members for o in objectives):
            raise MoodpoError(f"soups set {value!r} has a broken {SOUPS_FILE} (needs objectives and one run each)")
        for obj in objectives:  # its member runs must be under the runs folder as well
            member = Path(value) / str(members[obj])
            run = resolve_under(config.runs_dir, member.as_posix(), what=f"soups member run for {obj}")
            if not has_final_adapter(run) and not checkpoints(run):
                raise MoodpoError(f"soups set {value!r}: member run {members[obj]!r} has no adapter yet")
        kind = "soups"
    elif is_run(path):
        if not has_final_adapter(path) and not checkpoints(path):
            raise MoodpoError(f"run {value!r} has no adapter or checkpoint yet; wait for its first checkpoint")
        objectives = tuple(read_run_config(path).get("objectives") or ())
        kind = "run"
    elif is_checkpoint(path) and is_run(run_of_checkpoint(path)):
        objectives = tuple(read_run_config(run_of_checkpoint(path)).get("objectives") or ())
        kind = "checkpoint"
    else:
        raise MoodpoError(f"{value!r} is not a run, checkpoint or soups set")
    if not objectives:
        raise MoodpoError(f"{kind} {value!r} names no objectives in its config")
    if len(objectives) > MAX_OBJECTIVES:
        raise MoodpoError(f"{value!r} steers {len(objectives)} objectives; the app shows at most {MAX_OBJECTIVES}")
    return str(path), objectives


def _fingerprint(spec: str) -> tuple:
    """What identifies the weights a spec loads now: a run that is still training gets newer checkpoints."""
    if spec.startswith("base:"):
        return ()
    path = Path(spec)
    marks = [final_adapter(path), path / SOUPS_FILE, *checkpoints(path)[-1:]]
    stamps = []
    for mark in marks:
        try:
            stamps.append((str(mark), mark.stat().st_mtime_ns))
        except OSError:  # absent, or rotated away while we looked
            pass
    return tuple(stamps)


class PolicyStore:
    """Loaded policies, shared by all sessions: each loads once (lazily) and stays while it is recent.

    `get` resolves the value first, so a policy whose folder vanished is refused (and dropped)
    even when it is still in memory. Loads of different policies run side by side; two sessions
    asking for the same one wait for a single load.
    """

    def __init__(self, config: AppConfig, loader: Callable[..., Policy] = load_policy):
        self.config = config
        self.loader = loader
        self._loaded: OrderedDict[str, tuple[tuple, Policy]] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._ready.set()
        self.preload_error: str | None = None

    def preload(self, value: str) -> threading.Thread:
        """Load `value` and its objectives' scorers in a background thread (at app start).

        A cold start then pays for the loads before anyone asks; generation that arrives
        meanwhile waits for them (`wait_until_ready`) rather than loading a second copy.
        """
        from moodpo.objectives import score_all

        self._ready.clear()

        def run():
            try:
                policy = self.get(value)
                score_all(policy.objectives, ["Hello"], ["Hello! How can I help?"])
            except Exception as e:  # the first request loads again and shows the error to its user
                self.preload_error = f"preloading failed: {e}"
            finally:
                self._ready.set()

        thread = threading.Thread(target=run, daemon=True, name="preload")
        thread.start()
        return thread

    @property
    def loading(self) -> bool:
        return not self._ready.is_set()

    def wait_until_ready(self, on_load: Callable[[str], None] | None = None) -> None:
        """Return once the preload (if any) is done; `on_load(message)` is called first if it is not."""
        if self.loading:
            if on_load:
                on_load("Loading the model and scorers (the app just started)…")
            self._ready.wait()

    def objectives(self, value: str) -> tuple[str, ...]:
        return policy_spec(self.config, value)[1]

    def is_loaded(self, value: str) -> bool:
        with self._lock:
            return value in self._loaded

    def _cached(self, value: str, fingerprint: tuple) -> Policy | None:
        with self._lock:
            cached = self._loaded.get(value)
            if cached and cached[0] == fingerprint:
                self._loaded.move_to_end(value)
                return cached[1]
            self._loaded.pop(value, None)
            return None

    def get(self, value: str, on_load: Callable[[str], None] | None = None) -> Policy:
        """The policy for a picker value; `on_load(message)` is called before a (slow) first load."""
        spec, objectives = policy_spec(self.config, value)
        fingerprint = _fingerprint(spec)
        policy = self._cached(value, fingerprint)
        if policy is not None:
            return policy
        with self._lock:
            loading = self._loading.setdefault(value, threading.Lock())
        with loading:
            policy = self._cached(value, fingerprint)
            if policy is not None:
                return policy
            if on_load:
                on_load(f"Loading {self.config.model if value == BASE else value} (first use)…")
            try:
                if spec.startswith("base:"):
                    policy = self.loader(spec, objectives=list(objectives))
                else:
                    policy = self.loader(spec)
            except OSError as e:
                raise MoodpoError(f"could not load {value!r}: {e}") from None
            with self._lock:
                self._loaded[value] = (fingerprint, policy)
                while len(self._loaded) > max(1, self.config.cached_policies):
                    self._loaded.popitem(last=False)
            return policy
