"""What one app process is configured with: folders, the base model and the limits it enforces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from moodpo.models import DEFAULT_MODEL
from moodpo.policy import DEFAULT_OBJECTIVES
from moodpo.sampling_settings import MAX_NEW_TOKENS

# The MO-ODPO policy trained by this project and shipped in the repository (runs/shipped/).
SHIPPED_POLICY = "shipped/help-concise/moodpo"
# The environment variable that holds the admin password (a Space secret in Space mode).
ADMIN_PASSWORD_ENV = "MOODPO_ADMIN_PASSWORD"
# Sliders are created up front (gradio layouts are static); a policy may steer at most this many.
MAX_OBJECTIVES = 6


@dataclass(frozen=True)
class AppConfig:
    runs_dir: Path = Path("runs")
    data_dir: Path = Path("data")
    configs_dir: Path = Path("configs")
    model: str = DEFAULT_MODEL
    # The objectives the base model is steered on (runs and soups sets know their own).
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    policy: str = "base"
    max_prompt_chars: int = 4000
    max_new_tokens: int = MAX_NEW_TOKENS
    max_new_tokens_limit: int = 512
    # Training runs started from the app that may go at once.
    max_runs: int = 1
    # Loaded policies kept in memory (each holds its own copy of the base model).
    cached_policies: int = 3
    # Creating studies, unblinded results and exports in the Vote tab; None: those controls are not built.
    admin_password: str | None = field(default=None, repr=False)
    # Space mode: a public app where training, like every admin action, needs the admin password.
    public: bool = False
    # The study the Vote tab opens on (an id or a name); None: the first open one.
    vote_study: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "runs_dir", Path(self.runs_dir))
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "configs_dir", Path(self.configs_dir))
        object.__setattr__(self, "objectives", tuple(self.objectives))
        object.__setattr__(self, "admin_password", self.admin_password or None)
