"""The app in a real browser: Debian's chromium driven by playwright (skipped when either is missing).

Screenshots go to tests/artifacts/ (browser-steer.png, browser-compare.png, browser-pareto.png,
browser-vote.png, browser-train.png). The vote test annotates a study of synthetic pairs. The last
test trains a 3-step run in a background process from the Train tab with the tab's default eval
interval, and watches its curves and live front in the Train tab and its front in the Pareto tab.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from test_ui_fixtures import free_port, make_runs
from ui.training import TAB_EVAL_EVERY
from test_ui_votes import OBJECTIVES as VOTE_OBJECTIVES, QUESTIONS as VOTE_QUESTIONS, SYSTEM_A, synthetic_pairs

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT_MS = 120_000
QUICK_CONFIG = """\
objectives: [helpfulness, harmlessness]
per_device_train_batch_size: 2
max_new_tokens: 8
max_prompts: 8
max_steps: 3
eval_grid: 2
eval_prompts: 2
"""


@pytest.fixture(scope="module")
def vote_data(tmp_path_factory):
    """The app's data folder, holding one open study of three synthetic pairs."""
    from moodpo.human.votes import VoteStore

    data = tmp_path_factory.mktemp("data")
    VoteStore(data).create_study("browser study", synthetic_pairs(3), questions=VOTE_QUESTIONS,
                                 objectives=VOTE_OBJECTIVES)
    return data


@pytest.fixture(scope="module")
def url(tmp_path_factory, tiny_model_dir, vote_data):
    from ui import AppConfig, build_demo, launch

    runs = make_runs(tmp_path_factory.mktemp("runs"), tiny_model_dir)
    configs = tmp_path_factory.mktemp("configs")
    (configs / "quick.yaml").write_text(QUICK_CONFIG)
    demo = build_demo(AppConfig(runs_dir=runs, configs_dir=configs, data_dir=vote_data, model=tiny_model_dir,
                                max_new_tokens=16))
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.trainer.shutdown()
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector("#steer-generate", timeout=WAIT_MS)
    yield page
    page.close()


def slider_values(page) -> list[float]:
    return [float(box.input_value()) for box in page.locator(".weight-slider input[type=number]").all()[:2]]


def test_steer_move_a_slider_generate_and_read_the_scores(page):
    ARTIFACTS.mkdir(exist_ok=True)
    track = page.locator(".weight-slider input[type=range]").first
    box = track.bounding_box()
    page.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + box["height"] / 2)
    # the other slider follows, so the weights stay on the simplex
    page.wait_for_function("""() => {
        const v = [...document.querySelectorAll('.weight-slider input[type=number]')].slice(0, 2).map(x => +x.value);
        return v[0] > 0.7 && Math.abs(v[0] + v[1] - 1) < 0.02; }""", timeout=WAIT_MS)
    helpful, harmless = slider_values(page)
    page.locator("#steer-prompt textarea").fill("How do airplanes stay in the air?")
    page.locator("#steer-generate").click()
    page.wait_for_function("document.querySelector('#steer-response textarea').value.trim().length > 0",
                           timeout=WAIT_MS)
    page.wait_for_function(
        "/Harmlessness\\s+[0-9.]+\\s+[0-9.]+/.test(document.querySelector('#steer-scores').innerText)",
        timeout=WAIT_MS)
    scores = page.locator("#steer-scores").inner_text()
    assert re.search(r"Helpfulness\s+[0-9.]+\s+[0-9.]+", scores)
    prefix = page.locator("#steer-prefix textarea").input_value()
    assert f"Helpfulness: {helpful:.2f}, Harmlessness: {harmless:.2f}" in prefix
    page.screenshot(path=str(ARTIFACTS / "browser-steer.png"), full_page=True)


def test_empty_prompt_shows_an_error_and_the_app_stays_up(page):
    page.locator("#steer-generate").click()
    page.get_by_text("the prompt is empty").first.wait_for(timeout=WAIT_MS)
    page.locator("#steer-prompt textarea").fill("Hello")
    page.locator("#steer-generate").click()
    page.wait_for_function("document.querySelector('#steer-response textarea').value.trim().length > 0",
                           timeout=WAIT_MS)


def test_compare_and_pareto_tabs(page):
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-prompt textarea").fill("How can I become a better listener?")
    page.locator("#compare-run").click()
    page.get_by_text("for both").first.wait_for(timeout=WAIT_MS)
    assert page.locator("#compare-a textarea").input_value() and page.locator("#compare-b textarea").input_value()
    page.screenshot(path=str(ARTIFACTS / "browser-compare.png"), full_page=True)
    page.get_by_role("tab", name="Pareto").click()
    page.locator("#pareto-plot .js-plotly-plot").first.wait_for(timeout=WAIT_MS)
    page.get_by_text("alpha-0.5 (α=0.5)").first.wait_for(timeout=WAIT_MS)
    page.locator("#pareto-points [role=gridcell]").nth(6 + 2).click()  # row 2: alpha-0.5 at w = (0.75, 0.25)
    page.locator("#pareto-samples [role=gridcell]").filter(has_text="answer 0 at 0.75").first.wait_for(
        timeout=WAIT_MS)
    # model output is text: markup in a response is shown, not rendered
    assert page.locator("#pareto-samples [role=gridcell]").filter(has_text="<b>not bold</b>").count() >= 1
    assert page.locator("#pareto-samples b").count() == 0
    page.screenshot(path=str(ARTIFACTS / "browser-pareto.png"), full_page=True)


def test_vote_identify_choose_vote_and_go_on(page, vote_data):
    from moodpo.human.votes import VoteStore

    page.get_by_role("tab", name="Vote").click()
    page.locator("#vote-name textarea").fill("Grace <i>H</i>")
    page.locator("#vote-identify").click()
    page.wait_for_function("document.querySelector('#vote-a textarea')?.value.length > 0", timeout=WAIT_MS)
    page.locator("#vote-who").get_by_text("Annotating as Grace <i>H</i>").wait_for(timeout=WAIT_MS)
    assert page.locator("#vote-who i").count() == 0  # the name is shown as text
    page.locator("#vote-progress").get_by_text("0 / 3").wait_for(timeout=WAIT_MS)
    body = page.locator("body").inner_text()
    assert SYSTEM_A not in body and "BETA" not in body  # blinded
    page.locator("#vote-q0").get_by_label("A better").check()
    page.locator("#vote-q1").get_by_label("Tie").check()
    page.locator("#vote-comment textarea").fill("A is clearer")
    first = page.locator("#vote-prompt textarea").input_value()
    page.locator("#vote-submit").click()
    page.locator("#vote-reveal").get_by_text("your vote is saved").wait_for(timeout=WAIT_MS)
    reveal = page.locator("#vote-reveal").inner_text()
    assert SYSTEM_A in reveal and "SYSTEM-<b>BETA</b>" in reveal and page.locator("#vote-reveal b").count() == 0
    page.locator("#vote-progress").get_by_text("1 / 3").wait_for(timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "browser-vote.png"), full_page=True)
    store = VoteStore(vote_data)
    frame = store.votes_frame()
    assert store.count_votes() == 1 and list(frame["choice"]) == ["left", "tie"]
    assert set(frame["annotator"]) == {"Grace <i>H</i>"} and set(frame["comment"]) == {"A is clearer"}
    page.locator("#vote-next").click()
    page.wait_for_function(f"(v => v && v !== {first!r})(document.querySelector('#vote-prompt textarea')?.value)",
                           timeout=WAIT_MS)
    second = page.locator("#vote-prompt textarea").input_value()
    page.wait_for_function("document.querySelector('#vote-reveal').innerText.trim() === ''", timeout=WAIT_MS)
    # a reload remembers the annotator (browser storage) and shows the same pair again
    page.reload()
    page.get_by_role("tab", name="Vote").click()
    page.locator("#vote-who").get_by_text("Annotating as").wait_for(timeout=WAIT_MS)
    page.wait_for_function(f"document.querySelector('#vote-prompt textarea')?.value === {second!r}", timeout=WAIT_MS)
    page.locator("#vote-progress").get_by_text("1 / 3").wait_for(timeout=WAIT_MS)


def test_train_a_run_watch_it_and_the_polling_stops(page):
    events = []  # every UI event, timer ticks included, is a POST to queue/join
    page.on("request", lambda request: events.append(request.url) if "queue/join" in request.url else None)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-config input").click()
    page.get_by_role("option", name="quick").click()
    page.wait_for_function("document.querySelector('#train-config input').value === 'quick'", timeout=WAIT_MS)
    # the config sets no eval interval: the tab's default (every 3 steps) turns the live front on
    page.wait_for_function(f"document.querySelector('#train-eval-every input').value === '{TAB_EVAL_EVERY}'",
                           timeout=WAIT_MS)
    before = len(events)
    page.locator("#train-start").click()
    page.locator("#train-status").get_by_text("finished").wait_for(timeout=4 * WAIT_MS)
    assert len(events) - before >= 3  # the start, then the timer's ticks while it trained
    page.locator("#train-curves .js-plotly-plot").first.wait_for(timeout=WAIT_MS)
    assert "3 / 3" in page.locator("#train-progress").inner_text()
    page.locator("#train-front .legend").get_by_text("step 3").wait_for(timeout=WAIT_MS)  # the live front
    page.screenshot(path=str(ARTIFACTS / "browser-train.png"), full_page=True)
    run = page.locator("#train-status strong").inner_text()
    # nothing trains any more: at most one more tick (the run may end between its checks), then silence
    page.wait_for_timeout(3000)
    settled = len(events)
    page.wait_for_timeout(5000)
    assert len(events) == settled
    # while it trained, the timer added its in-training evaluation to the Pareto tab
    page.get_by_role("tab", name="Pareto").click()
    page.locator("#pareto-hv [role=gridcell]").filter(has_text=run).first.wait_for(timeout=WAIT_MS)
