"""The Gradio front end of moodpo: layout, plain handlers and figures (the backend never imports gradio).

    from ui import AppConfig, build_demo, launch
    launch(build_demo(AppConfig(runs_dir="runs")))
"""

from ui.layout import build_demo, launch
from ui.settings import AppConfig

__all__ = ["AppConfig", "build_demo", "launch"]
