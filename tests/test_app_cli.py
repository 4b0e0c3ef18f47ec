"""`python app.py` and `moodpo app` (ui/serve.py): flags and environment variables, password check,
refusing a bad initial policy."""

from __future__ import annotations

import pytest

from moodpo.cli import main as moodpo_main
from ui import serve as app


def test_flags_default_to_environment_variables(monkeypatch):
    monkeypatch.setenv("MOODPO_PORT", "9999")
    monkeypatch.setenv("MOODPO_RUNS", "/srv/runs")
    monkeypatch.setenv("MOODPO_PASSWORD", "secret")
    args = app.parse_args([])
    assert (args.port, args.runs, args.password, args.model, args.host) == (9999, "/srv/runs", "secret",
                                                                           "smollm2-135m", None)
    args = app.parse_args(["--port", "7000", "--runs", "here", "--model", "tiny", "--policy", "alpha-1"])
    assert (args.port, args.runs, args.model, args.policy) == (7000, "here", "tiny", "alpha-1")
    args = app.parse_args(["--admin_password", "a", "--vote_study", "s", "--max_runs", "2"])
    assert (args.admin_password, args.vote_study, args.max_runs) == ("a", "s", 2)


def test_moodpo_app_takes_the_same_flags(monkeypatch, tmp_path, capsys):
    seen = {}
    monkeypatch.setattr(app, "launch", lambda demo, **kwargs: seen.update(kwargs, demo=demo))
    assert moodpo_main(["app", "--runs", str(tmp_path), "--port", "7002", "--max_runs", "2"]) == 0
    assert seen["server_port"] == 7002 and seen["demo"].trainer.config.max_runs == 2
    with pytest.raises(SystemExit) as e:
        moodpo_main(["app", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: moodpo app") and "--admin_password" in out and "--max_runs" in out
    with pytest.raises(SystemExit) as e:
        moodpo_main(["app", "--max-runs", "2"])  # one spelling: underscores, as every moodpo command
    assert e.value.code == 2


def test_main_builds_and_launches_with_a_password(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(app, "launch", lambda demo, **kwargs: seen.update(kwargs, demo=demo))
    app.main(["--runs", str(tmp_path), "--port", "7001", "--host", "127.0.0.1", "--password", "pässword"])
    assert seen["server_port"] == 7001 and seen["server_name"] == "127.0.0.1"
    assert seen["auth"]("anyone", "pässword") and not seen["auth"]("anyone", "wrong")
    assert seen["demo"].store.config.runs_dir == tmp_path


def test_main_refuses_an_initial_policy_outside_the_runs_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(app, "launch", lambda demo, **kwargs: pytest.fail("must not launch"))
    with pytest.raises(SystemExit, match="not under the runs folder"):
        app.main(["--runs", str(tmp_path), "--policy", "../elsewhere"])


def test_the_app_opens_on_the_shipped_policy_where_it_exists(tmp_path):
    assert app.initial_policy(str(tmp_path), None) == "base"
    (tmp_path / app.SHIPPED_POLICY).mkdir(parents=True)
    assert app.initial_policy(str(tmp_path), None) == app.SHIPPED_POLICY
    assert app.initial_policy(str(tmp_path), "alpha-1") == "alpha-1"


def test_the_pareto_tab_opens_on_the_shipped_comparison():
    from ui.pareto_tab import PARETO_DEFAULT_RUNS, default_fronts

    shipped = ["shipped/help-concise/base", "shipped/help-concise/moodpo", "shipped/help-concise/soups"]
    others = ["alpha-1", "shipped/help-harm/base", "shipped/help-harm/moodpo", "zeta"]
    assert default_fronts(sorted(others + shipped)) == shipped
    many = [f"run-{i:02d}" for i in range(12)]
    assert default_fronts(many) == many[:PARETO_DEFAULT_RUNS]
    assert default_fronts([]) == []
