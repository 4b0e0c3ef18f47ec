"""The app's look: the theme and the CSS that gradio takes at launch."""

from __future__ import annotations

import gradio as gr

CSS = """
.intro p { margin: 0.2em 0 0.6em 0; }
.status-line { min-height: 1.5em; color: var(--body-text-color-subdued); }
.preset-row button { min-width: 0 !important; }
.train-progress progress { appearance: none; height: 0.7em; border: none; border-radius: 0.35em; overflow: hidden;
                           background: var(--neutral-200); }
.train-progress progress::-webkit-progress-bar { background: var(--neutral-200); }
.train-progress progress::-webkit-progress-value { background: var(--color-accent); }
.train-progress progress::-moz-progress-bar { background: var(--color-accent); }
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate")
