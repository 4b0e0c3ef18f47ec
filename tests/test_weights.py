"""Non-finite and malformed weights get the same one-line MoodpoError at every boundary: the shared
validators, config YAML, CLI flags and the UI's handlers (the API is driven in test_app_http.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moodpo.cli import main
from moodpo.config import load_config
from moodpo.errors import MoodpoError
from moodpo.weights import parse_weights, resolve_alpha, split_values, validate_weights

NON_FINITE = [[math.nan, 1], [math.inf, 1], [1, -math.inf], ["nan", 1], ["inf", "1"], ["1e999", 0]]


@pytest.mark.parametrize("weights", NON_FINITE)
def test_non_finite_weights_are_refused(weights):
    with pytest.raises(MoodpoError, match=r"^weights must be finite, got \[") as e:
        validate_weights(weights, 2)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("weights", [5, 0.5, None, [[1, 0]], "ab", [1, "x"], {"a": 1}])
def test_weights_that_are_not_a_list_of_numbers(weights):
    with pytest.raises(MoodpoError, match="weights must be"):
        validate_weights(weights, 2)


def test_a_long_bad_list_makes_a_short_message():
    with pytest.raises(MoodpoError) as e:
        validate_weights(["x"] * 10_000, 2)
    assert len(str(e.value)) < 120


def test_huge_and_tiny_weights_normalise_without_overflow():
    assert validate_weights([1e308, 1e308], 2) == pytest.approx([0.5, 0.5])
    assert validate_weights([5e-324, 0], 2) == pytest.approx([1, 0])
    assert validate_weights([1e308, 1e308], 2, normalize=False) == pytest.approx([1e308, 1e308])


@pytest.mark.parametrize("text", ["nan, 1", "inf 0", "1e999,1"])
def test_parse_weights_refuses_non_finite_text(text):
    with pytest.raises(MoodpoError, match="weights must be finite"):
        parse_weights(text, 2)


@pytest.mark.parametrize("alpha", [math.nan, math.inf, [1, math.nan], [math.inf], "nan"])
def test_resolve_alpha_refuses_non_finite(alpha):
    with pytest.raises(MoodpoError, match="alpha must be finite and > 0"):
        resolve_alpha(alpha, 2)


def test_resolve_alpha_one_value_is_symmetric():
    assert resolve_alpha([0.5], 3).tolist() == [0.5] * 3 and resolve_alpha(2, 2).tolist() == [2, 2]


@pytest.mark.parametrize("yaml_text,match", [
    ("alpha: .nan\n", "alpha must be finite and > 0"),
    ("alpha: [1, .inf]\n", "alpha must be finite and > 0"),
    ("weight_mode: fixed\nfixed_weights: [.nan, 1]\n", "weights must be finite"),
    ("weight_mode: fixed\nfixed_weights: [1, -.inf]\n", "weights must be finite"),
])
def test_config_yaml_with_non_finite_weights_or_alpha(tmp_path, yaml_text, match):
    path = tmp_path / "config.yaml"
    path.write_text("objectives: [helpfulness, harmlessness]\n" + yaml_text)
    with pytest.raises(MoodpoError, match=match):
        load_config(path)


@pytest.mark.parametrize("flags,match", [
    (["--alpha", "nan"], "alpha must be finite and > 0"),
    (["--alpha", "1", "inf"], "alpha must be finite and > 0"),
    (["--weight_mode", "fixed", "--fixed_weights", "nan", "1"], "weights must be finite"),
    (["--weight_mode", "fixed", "--fixed_weights", "1e999", "0"], "weights must be finite"),
])
def test_cli_flags_with_non_finite_values_exit_2_with_one_line(flags, match, tmp_path, capsys):
    assert main(["train", "--output_dir", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("weights", NON_FINITE)
def test_ui_weight_checks(weights):
    from ui.generation import check_weights

    with pytest.raises(MoodpoError, match="weights must be finite"):
        check_weights(weights, ["helpfulness", "harmlessness"])
    text = ", ".join(map(str, weights))
    with pytest.raises(MoodpoError, match="weights must be finite"):
        check_weights(split_values(text), ["helpfulness", "harmlessness"])


def test_ui_check_weights_refuses_a_bare_number():
    from ui.generation import check_weights

    with pytest.raises(MoodpoError, match="numbers, a list of 2"):
        check_weights(5, ["helpfulness", "harmlessness"])
    assert np.allclose(check_weights((7, 3), ["helpfulness", "harmlessness"]), [0.7, 0.3])
