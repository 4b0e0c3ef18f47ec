"""Save the first plotly figure of an HTML file (front.html, compare.html) as a PNG, for the README.

    python bench/figure_png.py runs/shipped/help-harm/compare/compare.html docs/fronts.png

Renders the page in Debian's chromium through playwright (no kaleido needed) and screenshots the
plot's element.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def save_png(html: str | Path, png: str | Path, width: int = 900, height: int = 620) -> None:
    """Screenshot the first plotly figure of `html` into `png` (Debian's chromium via playwright)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(Path(html).resolve().as_uri())
        plot = page.locator(".js-plotly-plot").first
        plot.wait_for(state="visible", timeout=60_000)
        page.wait_for_timeout(500)
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        plot.screenshot(path=str(png))
        browser.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("html")
    p.add_argument("png")
    p.add_argument("--width", type=int, default=900)
    p.add_argument("--height", type=int, default=620)
    args = p.parse_args()
    save_png(args.html, args.png, args.width, args.height)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
