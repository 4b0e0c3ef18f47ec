"""The Vote tab and the public voting endpoints, over the plain handlers in ui/voting.py.

Annotators pick a study (or follow an invite link, `?study=NAME`, which opens this tab on it),
identify once (the token lives in the browser's localStorage, so a reload keeps it), read the
study's instructions, judge blinded pairs and, unless the study keeps them hidden, see who wrote
what after each vote. The admin controls (new studies, invite links, live pairs, close/reopen,
progress per annotator and coverage per pair, unblinded results, exports) are built only when
the app has an admin password, and every admin handler checks it again.

Public endpoints for `gradio_client` (a script can run a whole annotation session):

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    studies = client.predict(api_name="/vote_studies")     # [{id, name, n_pairs, questions}]
    token = client.predict("Ada", api_name="/vote_register")
    shown = client.predict(studies[0]["id"], token, api_name="/vote_next")
    # shown: {vote_id, study, instructions, prompt, a, b, questions: [{key, text}], done, total},
    # or None when done
    client.predict(shown["vote_id"], {"helpfulness": "left", "overall": "tie"}, "", api_name="/vote_submit")
    # -> {recorded, vote_id, a: {system, weights}, b: {...}}; recorded is False for a repeat; a
    # study that keeps the systems hidden leaves out a and b
    client.predict(shown["vote_id"], api_name="/vote_skip")

Choices are left (A better), right (B better), tie and both_bad. Voting events, UI and API,
share their own concurrency group, apart from generation: a model busy generating never holds
up a vote, and each vote is a short SQLite transaction.
"""

from __future__ import annotations

import hashlib
import html
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from moodpo.errors import MoodpoError
from moodpo.human.votes import CHOICES, MAX_COMMENT_CHARS, MAX_NAME_CHARS, VoteStore
from ui import voting
from ui.admin import check_admin
from ui.errors import user_errors
from ui.figures import empty_figure
from ui.policies import PolicyStore, list_policies
from ui.settings import MAX_OBJECTIVES, AppConfig

VOTE_QUEUE = "votes"
# Votes are short SQLite transactions that queue on the database's lock; this many run at once.
VOTE_CONCURRENCY = 16
ADMIN_QUEUE = "vote-admin"
STUDY_QUEUE = "vote-make-study"
MAX_QUESTIONS = MAX_OBJECTIVES + 1  # one per objective, and overall
VOTE = dict(api_visibility="private", concurrency_id=VOTE_QUEUE, concurrency_limit=VOTE_CONCURRENCY)
ADMIN = dict(api_visibility="private", concurrency_id=ADMIN_QUEUE, concurrency_limit=4)
STORAGE_KEY = "moodpo-annotator"
VOTE_TAB = "vote"

INTRO = """\
Judge pairs of answers to the same prompt. The systems behind **A** and **B** stay hidden while
you judge (some studies show who wrote what after each vote). Answer each question, add a comment
if you like, and submit, or skip a pair you cannot judge. Your name is remembered in this browser.
"""
DONE = "**Nothing left to judge in this study for you.** Thank you! Choose another study, or come back later."


def browser_secret(data_dir: Path) -> str:
    """The key gradio obfuscates the stored token with. Not a secret (the browser holds it): it is
    stable across restarts, so annotators stay identified, and differs between data folders."""
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:32]


def _choice_labels() -> list[tuple[str, str]]:
    return [(voting.CHOICE_LABELS[c], c) for c in CHOICES]


def _default_study(votes: VoteStore | None, config: AppConfig, studies: list[dict]) -> str | None:
    ids = [s["id"] for s in studies]
    if config.vote_study and votes is not None:
        try:
            found = votes.find_study(config.vote_study).id
        except MoodpoError:
            found = None
        if found in ids:
            return found
    return ids[0] if ids else None


@dataclass(frozen=True)
class VoteTab:
    """What attach_votes needs of a built Vote tab."""

    votes: voting.LazyVotes
    token: gr.BrowserState
    on_load: Callable[[str | None], dict]
    load_outputs: set


@dataclass(frozen=True)
class _VoteWidgets:
    token: gr.BrowserState
    shown: gr.State  # the blinded pair on screen: its vote id is fixed until it is answered
    refresh: gr.Button
    study: gr.Dropdown
    identify_row: gr.Row
    name: gr.Textbox
    identify: gr.Button
    who: gr.Markdown
    forget: gr.Button
    counter: gr.Markdown
    pair_box: gr.Column
    instructions: gr.Markdown
    prompt: gr.Textbox
    a: gr.Textbox
    b: gr.Textbox
    radios: list[gr.Radio]
    comment: gr.Textbox
    submit: gr.Button
    skip: gr.Button
    reveal: gr.Markdown
    next_button: gr.Button
    status: gr.Markdown

    @property
    def pair_outputs(self) -> set:
        return {self.shown, self.pair_box, self.instructions, self.prompt, self.a, self.b, *self.radios, self.comment,
                self.submit, self.skip, self.reveal, self.next_button, self.counter, self.status}

    @property
    def identity_outputs(self) -> set:
        return {self.identify_row, self.who, self.forget}


def _vote_layout(config: AppConfig) -> _VoteWidgets:
    """The annotator's widgets (call inside gr.Tab)."""
    # Rendered at the top level by attach_votes: inside a tab it would mount only when the tab
    # opens, after the page-load event has read it.
    token = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=browser_secret(config.data_dir), render=False)
    gr.Markdown(INTRO)
    shown = gr.State(None)
    refresh = gr.Button("↻ refresh", size="sm", render=False)
    study = gr.Dropdown([], label="Study", buttons=[refresh], elem_id="vote-study",
                        info="open studies; your progress is kept per study")
    with gr.Row(visible=False) as identify_row:
        name = gr.Textbox(label="Your name", max_length=MAX_NAME_CHARS, scale=3, elem_id="vote-name",
                          placeholder="a name or nickname: it labels your votes")
        identify = gr.Button("Start", variant="primary", scale=1, size="md", elem_id="vote-identify")
    with gr.Row(equal_height=True):
        who = gr.Markdown(elem_id="vote-who")
        forget = gr.Button("Not you? Change name", size="sm", visible=False, elem_id="vote-forget")
    counter = gr.Markdown(elem_id="vote-progress")
    with gr.Column(visible=False) as pair_box:
        instructions = gr.Markdown(visible=False, elem_id="vote-instructions", elem_classes=["instructions"])
        prompt = gr.Textbox(label="Prompt", interactive=False, lines=2, max_lines=12, elem_id="vote-prompt")
        with gr.Row():
            a = gr.Textbox(label="A", interactive=False, lines=8, max_lines=30, elem_id="vote-a")
            b = gr.Textbox(label="B", interactive=False, lines=8, max_lines=30, elem_id="vote-b")
        radios = [gr.Radio(_choice_labels(), label=f"question {i + 1}", visible=False, elem_id=f"vote-q{i}")
                  for i in range(MAX_QUESTIONS)]
        comment = gr.Textbox(label="Comment (optional)", max_length=MAX_COMMENT_CHARS, lines=2,
                             elem_id="vote-comment", info=f"up to {MAX_COMMENT_CHARS:,} characters")
        with gr.Row():
            submit = gr.Button("Submit vote", variant="primary", elem_id="vote-submit")
            skip = gr.Button("Skip this pair", elem_id="vote-skip")
        reveal = gr.Markdown(elem_id="vote-reveal")
        next_button = gr.Button("Next pair →", variant="primary", visible=False, elem_id="vote-next")
    status = gr.Markdown(elem_classes=["status-line"], elem_id="vote-status")
    return _VoteWidgets(token, shown, refresh, study, identify_row, name, identify, who, forget, counter, pair_box,
                        instructions, prompt, a, b, radios, comment, submit, skip, reveal, next_button, status)


class _VoteEvents:
    """The annotator's event handlers: values in, component updates out."""

    def __init__(self, config: AppConfig, w: _VoteWidgets, lazy: voting.LazyVotes):
        self.config, self.w, self.lazy = config, w, lazy

    def show(self, item: dict | None, message: str = "") -> dict:
        """Updates that put a blinded pair on screen, or say that nothing is left."""
        w = self.w
        if item is None:
            return {w.shown: None, w.pair_box: gr.update(visible=False), w.counter: "", w.status: message or DONE,
                    **{r: gr.update(visible=False, value=None) for r in w.radios},
                    w.reveal: "", w.next_button: gr.update(visible=False)}
        questions = item["questions"]
        if len(questions) > MAX_QUESTIONS:
            raise MoodpoError(f"this study asks {len(questions)} questions; the app shows at most {MAX_QUESTIONS}")
        return {w.shown: item, w.pair_box: gr.update(visible=True),
                w.instructions: gr.update(value=item["instructions"], visible=bool(item["instructions"])),
                w.prompt: item["prompt"], w.a: item["a"], w.b: item["b"],
                **{r: gr.update(visible=i < len(questions), value=None, interactive=True,
                                label=questions[i]["text"] if i < len(questions) else None)
                   for i, r in enumerate(w.radios)},
                w.comment: gr.update(value="", interactive=True), w.submit: gr.update(visible=True, interactive=True),
                w.skip: gr.update(visible=True), w.reveal: "", w.next_button: gr.update(visible=False),
                w.counter: voting.progress_text(item["done"], item["total"]), w.status: message}

    def identity(self, name_value: str | None) -> dict:
        w = self.w
        if name_value is None:
            return {w.identify_row: gr.update(visible=True), w.who: "**Who are you?** Your name labels your votes.",
                    w.forget: gr.update(visible=False)}
        return {w.identify_row: gr.update(visible=False), w.who: f"Annotating as **{html.escape(name_value)}**",
                w.forget: gr.update(visible=True)}

    def current(self, study_id, token_value) -> dict:
        """The annotator's pair in the chosen study (nothing if not identified or no study)."""
        store_ = self.lazy.get()
        if not study_id:
            return self.show(None, "No open study yet: ask the organiser to create one." if not voting.open_studies(
                store_) else "Choose a study.")
        if voting.annotator(store_, token_value) is None:
            return self.show(None, "Type your name and press Start.")
        return self.show(voting.next_item(store_, study_id, token_value))

    def on_load(self, token_value, invited: str | None = None):
        """The page's first state: the annotator, and the study an invite link (`?study=`) names,
        else the app's default study. A link to a study that is closed or unknown opens none, and
        says why, rather than another study."""
        store_ = self.lazy.get()
        studies = voting.open_studies(store_)
        invited_id, why = voting.invited_study(store_, invited)
        chosen = None if why else invited_id or _default_study(store_, self.config, studies)
        name_value = voting.annotator(store_, token_value)
        out = {self.w.study: gr.update(choices=voting.study_choices(studies), value=chosen),
               **self.identity(name_value)}
        try:
            out.update(self.current(chosen, token_value))
        except MoodpoError as e:  # e.g. a study closed a moment ago: say so, but still load the page
            out.update(self.show(None, html.escape(str(e))))
        if why:
            out.update(self.show(None, why))
        if name_value is None and token_value:
            out[self.w.token] = None  # a token this data folder does not know: forget it
        return out

    def start(self, name_value, study_id):
        new_token = voting.register(self.lazy.get(create=True), name_value)
        return {self.w.token: new_token, **self.identity(voting.annotator(self.lazy.get(), new_token)),
                **self.current(study_id, new_token)}

    def refresh_studies(self, study_id, token_value):
        studies = voting.open_studies(self.lazy.get())
        ids = [s["id"] for s in studies]
        chosen = study_id if study_id in ids else (ids[0] if ids else None)
        return {self.w.study: gr.update(choices=voting.study_choices(studies), value=chosen),
                **self.current(chosen, token_value)}

    def vote(self, item, token_value, comment_value, *values):
        if not item:
            raise MoodpoError("no pair on screen; choose a study")
        w = self.w
        questions = [q["key"] for q in item["questions"]]
        answers = voting.answers_from(questions, values[:len(questions)])
        store_ = voting.need(self.lazy.get())
        result = voting.submit(store_, item["vote_id"], answers, comment_value)
        objectives = store_.study(item["study"]).objectives
        done, total = store_.progress(item["study"], token_value)
        return {w.reveal: voting.reveal_markdown(result, result["recorded"], objectives),
                w.submit: gr.update(visible=False), w.skip: gr.update(visible=False),
                w.next_button: gr.update(visible=True), w.comment: gr.update(interactive=False),
                **{r: gr.update(interactive=False) for r in w.radios},
                w.counter: voting.progress_text(done, total), w.status: ""}

    def pass_on(self, item, token_value):
        if not item:
            raise MoodpoError("no pair on screen; choose a study")
        voting.skip(voting.need(self.lazy.get()), item["vote_id"])
        return self.current(item["study"], token_value)

    def forget_me(self):
        return {self.w.token: None, self.w.name: "", **self.identity(None),
                **self.show(None, "Type your name and press Start.")}


def build_vote_tab(config: AppConfig, store: PolicyStore, votes: VoteStore | None = None,
                   *, generation_queue: str) -> VoteTab:
    """The Vote tab and its events (call inside gr.Tabs; then attach_votes at the top level).

    votes: the app's store (tests pass one); default <data>/votes.sqlite, opened when first needed.
    """
    lazy = voting.LazyVotes(config.data_dir, votes)
    with gr.Tab("Vote", id=VOTE_TAB):
        w = _vote_layout(config)
        if config.admin_password:
            _admin_panel(config, store, lazy, w.study, generation_queue)
    events = _VoteEvents(config, w, lazy)
    pair_outputs, identity_outputs = w.pair_outputs, w.identity_outputs
    for trigger in (w.identify.click, w.name.submit):
        trigger(user_errors(events.start), [w.name, w.study], {w.token, *identity_outputs, *pair_outputs}, **VOTE)
    w.study.input(user_errors(events.current), [w.study, w.token], pair_outputs, **VOTE)
    w.refresh.click(user_errors(events.refresh_studies), [w.study, w.token], {w.study, *pair_outputs}, **VOTE)
    w.submit.click(user_errors(events.vote), [w.shown, w.token, w.comment, *w.radios], pair_outputs, **VOTE)
    w.skip.click(user_errors(events.pass_on), [w.shown, w.token], pair_outputs, **VOTE)
    w.next_button.click(user_errors(events.current), [w.study, w.token], pair_outputs, **VOTE)
    w.forget.click(events.forget_me, None, {w.token, w.name, *identity_outputs, *pair_outputs}, **VOTE)
    return VoteTab(lazy, w.token, events.on_load, {w.study, w.token, *identity_outputs, *pair_outputs})


@dataclass(frozen=True)
class _AdminWidgets:
    password: gr.Textbox
    admin_study: gr.Dropdown
    list_button: gr.Button
    studies: gr.Dataframe
    close: gr.Button
    reopen: gr.Button
    study_config: gr.Dropdown
    config_name: gr.Textbox
    create: gr.Button
    live_inputs: list  # name, policy A, weights A, policy B, weights B, pairs, seed
    live: gr.Button
    admin_status: gr.Markdown
    show_progress: gr.Button
    progress_summary: gr.Markdown
    per_annotator: gr.Dataframe
    per_pair: gr.Dataframe
    show_results: gr.Button
    figure: gr.Plot
    tables: dict[str, gr.Dataframe]
    export: gr.Button
    files: gr.File


def _admin_layout(config: AppConfig) -> _AdminWidgets:
    policy_choices = [(c.label, c.value) for c in list_policies(config)]
    with gr.Accordion("Admin: studies, invite links, progress, results, exports", open=False, elem_id="vote-admin"):
        password = gr.Textbox(label="Admin password", type="password", elem_id="vote-admin-password",
                              info="checked on every action")
        with gr.Row():
            admin_study = gr.Dropdown([], label="Study", scale=3, elem_id="vote-admin-study")
            list_button = gr.Button("Show studies", scale=1, elem_id="vote-admin-list")
        studies = gr.Dataframe(voting.studies_table([]), interactive=False, elem_id="vote-admin-studies",
                               label="Studies (send annotators a study's invite link: it opens the Vote tab on it)")
        with gr.Row():
            close = gr.Button("Close study", size="sm", elem_id="vote-admin-close")
            reopen = gr.Button("Reopen study", size="sm", elem_id="vote-admin-reopen")
        with gr.Accordion("New study from a config", open=False):
            configs = voting.study_configs(config)
            study_config = gr.Dropdown(configs, value=configs[0] if configs else None, label="Study config",
                                       info=f"a YAML file in {config.configs_dir / voting.STUDIES_FOLDER}/; its "
                                            "pairs are generated and scored now (minutes on a CPU)")
            config_name = gr.Textbox(label="Study name", info="empty: the name in the config")
            create = gr.Button("Create study", variant="primary", elem_id="vote-admin-create")
        with gr.Accordion("Live pairs from two policies", open=False):
            with gr.Row():
                policy_a = gr.Dropdown(policy_choices, value=config.policy, label="Policy A")
                weights_a = gr.Textbox("0.5, 0.5", label="Weights A", info="one per objective")
            with gr.Row():
                policy_b = gr.Dropdown(policy_choices, value=config.policy, label="Policy B")
                weights_b = gr.Textbox("0.5, 0.5", label="Weights B")
            with gr.Row():
                live_name = gr.Textbox(label="Study name", info="a new study, or an existing one to add pairs to")
                live_n = gr.Number(4, label="Pairs", precision=0, minimum=1, maximum=voting.MAX_LIVE_PAIRS)
                live_seed = gr.Number(0, label="Seed", precision=0, minimum=0)
            live = gr.Button("Generate pairs", variant="primary", elem_id="vote-admin-live")
        admin_status = gr.Markdown(elem_classes=["status-line"], elem_id="vote-admin-status")
        gr.Markdown("**Progress**")
        show_progress = gr.Button("Show progress", elem_id="vote-admin-progress")
        progress_summary = gr.Markdown(elem_id="vote-admin-progress-summary")
        with gr.Row():
            per_annotator = gr.Dataframe(pd.DataFrame(), interactive=False, label="Per annotator",
                                         elem_id="vote-admin-annotators")
            per_pair = gr.Dataframe(pd.DataFrame(), interactive=False, label="Coverage per pair",
                                    elem_id="vote-admin-coverage")
        gr.Markdown("**Results** (unblinded)")
        show_results = gr.Button("Show results", elem_id="vote-admin-results")
        figure = gr.Plot(empty_figure("Choose a study and show its results"), label="Strengths",
                         elem_id="vote-admin-plot")
        tables = {key: gr.Dataframe(pd.DataFrame(), interactive=False, label=label, elem_id=f"vote-admin-{key}")
                  for key, label in voting.REPORT_LABELS.items()}
        export = gr.Button("Prepare downloads (CSV, JSONL, TRL dataset)", elem_id="vote-admin-export")
        files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="vote-admin-files")
    return _AdminWidgets(password, admin_study, list_button, studies, close, reopen, study_config, config_name, create,
                         [live_name, policy_a, weights_a, policy_b, weights_b, live_n, live_seed], live, admin_status,
                         show_progress, progress_summary, per_annotator, per_pair, show_results, figure, tables,
                         export, files)


def _admin_panel(config: AppConfig, store: PolicyStore, lazy: voting.LazyVotes, annotator_study: gr.Dropdown,
                 generation_queue: str) -> None:
    """Admin controls; built only when the app has an admin password. Each handler checks it."""
    w = _admin_layout(config)

    def listing(request: gr.Request | None, study_id=None, found=None) -> dict:
        found = voting.all_studies(lazy.get()) if found is None else found
        ids = [s.id for s in found]
        open_ = voting.open_studies(lazy.get())
        return {w.studies: voting.studies_table(found, _page_url(request)),
                w.admin_study: gr.update(choices=voting.admin_study_choices(found),
                                         value=study_id if study_id in ids else (ids[-1] if ids else None)),
                annotator_study: gr.update(choices=voting.study_choices(open_))}

    list_outputs = {w.studies, w.admin_study, annotator_study}

    @user_errors
    def list_studies(password_value, study_id, request: gr.Request):
        return listing(request, study_id, voting.admin_studies(lazy.get(), config, password_value))

    w.list_button.click(list_studies, [w.password, w.admin_study], list_outputs, **ADMIN)
    w.password.submit(list_studies, [w.password, w.admin_study], list_outputs, **ADMIN)

    for button, is_open in ((w.close, False), (w.reopen, True)):
        @user_errors
        def set_status(password_value, study_id, request: gr.Request, is_open=is_open):
            changed = voting.set_open(lazy.get(), config, password_value, study_id, is_open)
            return {**listing(request, changed.id),
                    w.admin_status: f"Study **{html.escape(changed.name)}** is {changed.status}."}

        button.click(set_status, [w.password, w.admin_study], {*list_outputs, w.admin_status}, **ADMIN)

    @user_errors
    def create_study(password_value, config_file, name_value, request: gr.Request, progress=gr.Progress()):
        check_admin(config, password_value)
        made = voting.create_from_config(
            lazy.get(create=True), config, password_value, config_file, name_value,
            on_wait=lambda seconds: progress(None, desc=f"Generating and scoring pairs… {seconds:.0f} s"))
        return {**listing(request, made.id),
                w.admin_status: f"Created **{html.escape(made.name)}** with {made.n_pairs} pairs."}

    # make_study loads its own copies of the study's policies: one build at a time, beside generation.
    w.create.click(create_study, [w.password, w.study_config, w.config_name], {*list_outputs, w.admin_status},
                   api_visibility="private", concurrency_id=STUDY_QUEUE, concurrency_limit=1)

    @user_errors
    def live_pairs(password_value, name_value, pa, wa, pb, wb, n, seed, request: gr.Request,
                   progress=gr.Progress()):
        check_admin(config, password_value)
        made, added = voting.live_study(
            lazy.get(create=True), store, config, password_value, name_value, pa, wa, pb, wb, n, seed,
            on_wait=lambda seconds: progress(None, desc=f"Generating {int(n or 0)} pairs… {seconds:.0f} s"))
        return {**listing(request, made.id),
                w.admin_status: f"Added {added} pairs to **{html.escape(made.name)}** ({made.n_pairs} in all)."}

    w.live.click(live_pairs, [w.password, *w.live_inputs], {*list_outputs, w.admin_status}, api_visibility="private",
                 concurrency_id=generation_queue, concurrency_limit=1)
    _admin_reports(config, lazy, w)


def _admin_reports(config: AppConfig, lazy: voting.LazyVotes, w: _AdminWidgets) -> None:
    """Progress, unblinded results and downloads of the chosen study."""

    @user_errors
    def study_progress(password_value, study_id):
        summary, annotators, coverage = voting.progress_tables(lazy.get(), config, password_value, study_id)
        return {w.progress_summary: summary, w.per_annotator: annotators, w.per_pair: coverage}

    w.show_progress.click(study_progress, [w.password, w.admin_study],
                          {w.progress_summary, w.per_annotator, w.per_pair}, **ADMIN)

    @user_errors
    def results(password_value, study_id):
        report = voting.results(lazy.get(), config, password_value, study_id)
        return {w.figure: voting.results_figure(report),
                **{t: report.get(key, pd.DataFrame()).round(3) for key, t in w.tables.items()}}

    w.show_results.click(results, [w.password, w.admin_study], {w.figure, *w.tables.values()}, **ADMIN)

    exports = tempfile.TemporaryDirectory(prefix="moodpo-votes-")  # removed when the process ends

    @user_errors
    def downloads(password_value, study_id):
        check_admin(config, password_value)
        out_dir = Path(tempfile.mkdtemp(dir=exports.name))
        return [str(p) for p in voting.export(lazy.get(), config, password_value, study_id, out_dir)]

    w.export.click(downloads, [w.password, w.admin_study], [w.files], **ADMIN)


def _page_url(request: gr.Request | None) -> str | None:
    """The address of the page an event came from (the browser's Referer), for invite links."""
    return dict(request.headers).get("referer") if request is not None else None


def attach_votes(demo: gr.Blocks, tab: VoteTab, tabs: gr.Tabs | None = None) -> None:
    """The Vote tab's top-level parts: the annotator's token in browser storage, the page-load
    event that restores the annotator and their pair (and, for an invite link's `?study=NAME`,
    selects the Vote tab in `tabs` on that study), and the public voting endpoints."""
    tab.token.render()

    @user_errors
    def on_load(token_value, request: gr.Request):
        invited = dict(request.query_params).get("study") if request is not None else None
        out = tab.on_load(token_value, invited)
        if invited and tabs is not None:
            out[tabs] = gr.Tabs(selected=VOTE_TAB)
        return out

    demo.load(on_load, [tab.token], {*tab.load_outputs, *([tabs] if tabs is not None else [])}, **VOTE)
    register_vote_api(tab.votes)


def register_vote_api(lazy: voting.LazyVotes) -> None:
    """The public voting endpoints, in their own concurrency group (see the module docstring)."""

    def vote_studies() -> list[dict]:
        """Open studies: id, name, n_pairs and questions (objective names and/or "overall")."""
        return voting.open_studies(lazy.get())

    def vote_register(name: str) -> str:
        """A token for a new annotator with this display name; pass it to /vote_next."""
        return voting.register(lazy.get(create=True), name)

    def vote_next(study: str, token: str) -> dict | None:
        """The annotator's pair in a study (by id or name), blinded, or None when nothing is left.

        {vote_id, study, prompt, a, b, questions: [{key, text}], done, total}; the same pair and
        vote id come back until it is answered or skipped.
        """
        store_ = voting.need(lazy.get())
        return voting.next_item(store_, store_.find_study(study).id if study else study, token)

    def vote_submit(vote_id: str, answers: dict, comment: str = "") -> dict:
        """Record a vote: answers maps every question key to left, right, tie or both_bad.

        Returns {recorded, vote_id, a: {system, weights}, b: {...}}; recorded is False, and
        nothing changes, when this vote id was already recorded.
        """
        return voting.submit(voting.need(lazy.get()), vote_id, answers, comment)

    def vote_skip(vote_id: str) -> dict:
        """Pass on the pair shown with this vote id; it never comes back to this annotator."""
        return voting.skip(voting.need(lazy.get()), vote_id)

    for fn in (vote_studies, vote_register, vote_next, vote_submit, vote_skip):
        gr.api(user_errors(fn), api_name=fn.__name__, concurrency_id=VOTE_QUEUE, concurrency_limit=VOTE_CONCURRENCY)

