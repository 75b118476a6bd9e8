"""Calibration: NLL, ECE and temperature scaling against hand computations,
and the evaluator on real modules."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from benchmark.configs.config import BenchmarkConfig, evaluation
from benchmark.modules.loading import ModuleError
from benchmark.runner.harness import run_benchmark
from benchmark.stats.metrics import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from tests.conftest import save_module_without_logits
from zoo.data import load_dataset


def _calibration(data):
    """Returns a config running only calibration on `data`."""
    return BenchmarkConfig(
        name="calibration_test", evaluations=(evaluation("calibration", data=data),)
    )


def test_nll_by_hand():
    # softmax([0, 0]) = (1/2, 1/2); softmax([ln 3, 0]) = (3/4, 1/4).
    logits = np.array([[0.0, 0.0], [math.log(3.0), 0.0]])
    expected = -(math.log(0.5) + math.log(0.75)) / 2
    assert negative_log_likelihood(logits, np.array([0, 0])) == pytest.approx(expected)
    expected = -(math.log(0.5) + math.log(0.25)) / 2
    assert negative_log_likelihood(logits, np.array([1, 1])) == pytest.approx(expected)


def test_ece_by_hand_with_15_bins():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])
    # Bins of width 1/15: 0.9 -> (13/15, 14/15]: correct, |1 - 0.9| = 0.1;
    # 0.8 = 12/15 -> the bin (11/15, 12/15] alone: wrong, |0 - 0.8| = 0.8;
    # 0.6 and 0.55 -> (8/15, 9/15]: both correct, |1 - 0.575| = 0.425, n = 2.
    expected = (1 * 0.1 + 1 * 0.8 + 2 * 0.425) / 4
    assert expected_calibration_error(probs, labels, 15) == pytest.approx(expected)
    # One bin: |accuracy - mean confidence| = |0.75 - 0.7125|.
    assert expected_calibration_error(probs, labels, 1) == pytest.approx(0.0375)


def test_perfectly_calibrated_and_overconfident_predictions():
    # 10 examples at confidence 0.8, 8 of them correct: ECE 0.
    probs = np.tile([[0.8, 0.2]], (10, 1))
    labels = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)
    # All at confidence 1.0 (bin 15), half correct: ECE 0.5.
    probs = np.tile([[1.0, 0.0]], (4, 1))
    assert expected_calibration_error(probs, np.array([0, 1, 0, 1])) == 0.5


def test_temperature_by_hand():
    # Three of four examples are class 0, all with logits (2, 0): the NLL of
    # (2 / T, 0) is minimal when sigmoid(2 / T) = 3/4, i.e. T = 2 / ln 3.
    logits = np.tile([[2.0, 0.0]], (4, 1))
    labels = np.array([0, 0, 0, 1])
    assert fit_temperature(logits, labels) == pytest.approx(2.0 / math.log(3.0), 1e-5)


def test_temperature_recovers_the_generating_one():
    rng = np.random.RandomState(0)
    z = rng.randn(20000, 5) * 2.0
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = np.array([rng.choice(5, p=row) for row in p])
    # Overconfident logits 3 z: the fitted temperature undoes the factor.
    assert fit_temperature(3.0 * z, labels) == pytest.approx(3.0, rel=0.05)
    assert negative_log_likelihood(3.0 * z / 3.0, labels) < negative_log_likelihood(
        3.0 * z, labels
    )


def test_evaluator_on_a_trained_module(exported_module):
    data = load_dataset("digits_0to4")
    rows = run_benchmark(
        _calibration("digits_0to4"), exported_module[0], report=lambda line: None
    )
    values = {r["metric"]: float(r["value"]) for r in rows}
    assert set(values) == {
        "nll",
        "ece",
        "top1",
        "nll_temperature_scaled",
        "ece_temperature_scaled",
    }
    assert all(0.0 <= values[k] <= 1.0 for k in ("ece", "ece_temperature_scaled"))
    assert values["nll"] > 0 and values["nll_temperature_scaled"] > 0
    scaled = [r for r in rows if r["metric"] == "nll_temperature_scaled"][0]
    assert json.loads(scaled["selected"])["temperature"] > 0
    # Fit and measurement halves partition the test split.
    total = int(scaled["train_size"]) + int(scaled["test_size"])
    assert total == data.num_examples("test")
    assert scaled["module_sha256"] == exported_module[1]
    assert json.loads(scaled["protocol"])["num_bins"] == 15


def test_class_count_mismatch_is_one_line(exported_module):
    with pytest.raises(ModuleError, match="has 5 logits but digits has 10 classes"):
        run_benchmark(_calibration("digits"), exported_module[0], report=print)


def test_module_without_logits_is_skipped(tmp_path):
    save_module_without_logits(tmp_path)
    lines = []
    assert (
        run_benchmark(_calibration("digits_0to4"), str(tmp_path), report=lines.append)
        == []
    )
    (note,) = [line for line in lines if line.startswith("[skip]")]
    assert "no 'logits' signature" in note


def test_zoo_benchmark_appends_calibration_rows_and_reports_bad_input(
    exported_module, tmp_path, warm
):
    from benchmark.results import leaderboard

    board = tmp_path / "board.csv"
    args = [
        f"--module={exported_module[0]}",
        "--config=smoke_all",
        "--evaluations=calibration",
        f"--leaderboard={board}",
        f"--cache_dir={tmp_path / 'cache'}",
    ]
    done = warm.run("benchmark.cli.benchmark", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = leaderboard.read_rows(str(board))
    assert {r["metric"] for r in rows} >= {"nll", "ece", "nll_temperature_scaled"}
    assert all(r["evaluation"] == "calibration" for r in rows)
    assert all(r["tf_version"] == tf.__version__ and r["device"] for r in rows)
    bad = warm.run("benchmark.cli.benchmark", *args, "--set=calibration.data=digits")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "has 5 logits but digits has 10 classes" in bad.stderr
    assert len(leaderboard.read_rows(str(board))) == len(rows)  # nothing appended
