"""Who may do what. Admin actions (studies, unblinded results, exports; in Space mode also
training) take the password the user typed and check it on every call, on the server: private
endpoints are hidden from the API page, not unreachable, so a hidden button is no protection.
"""

from __future__ import annotations

import hmac

from moodpo.errors import MoodpoError
from ui.settings import ADMIN_PASSWORD_ENV, AppConfig


def check_admin(config: AppConfig, password: str | None, action: str = "admin actions") -> None:
    """MoodpoError unless the app has an admin password and this is it (constant-time comparison)."""
    expected = config.admin_password
    if not expected:
        raise MoodpoError(f"{action} are off: this app has no admin password (set {ADMIN_PASSWORD_ENV})")
    if not isinstance(password, str) or not hmac.compare_digest(password.encode(), expected.encode()):
        raise MoodpoError("wrong admin password")


def check_training(config: AppConfig, password: str | None) -> None:
    """Training from the app: open to every user of a private app, an admin action in Space mode."""
    if config.public:
        check_admin(config, password, action="training and stopping runs on a public app")
