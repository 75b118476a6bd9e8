"""The few_shot evaluator: oracle features (separable: 1.0 at every k;
independent of labels: chance within the standard error), the closed form
against scikit-learn's RidgeClassifier, a regulariser chosen without the
test split, and real features through the harness's shared cache."""

import json

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier

from benchmark.evaluators import create_evaluator
from benchmark.evaluators.few_shot import RidgeSolver, draw_examples, normalise
from benchmark.features.feature_set import FeatureSet


def _set(x, y):
    return FeatureSet(
        np.asarray(x, np.float32),
        np.asarray(y, np.int64),
        np.array([f"e{i}" for i in range(len(y))]),
    )


def _rows(measurements):
    return {m.metric: m for m in measurements}


def _gaussians(rng, n_per_class, classes, dim, signal):
    y = np.repeat(np.arange(classes), n_per_class)
    centres = rng.normal(size=(classes, dim))
    return centres[y] * signal + rng.normal(size=(len(y), dim)), y


def test_separable_features_give_one_at_every_k():
    rng = np.random.default_rng(0)
    x, y = _gaussians(rng, 40, 5, 16, signal=50.0)
    tx, ty = _gaussians(np.random.default_rng(0), 20, 5, 16, signal=50.0)
    evaluator = create_evaluator("few_shot", shots=(1, 2, 5), draws=3)
    rows = _rows(evaluator.evaluate(_set(x, y), _set(tx, ty)))
    for k in (1, 2, 5):
        assert rows[f"{k}shot_accuracy"].value == 1.0
        assert rows[f"{k}shot_accuracy_se"].value == 0.0
        assert len(rows[f"{k}shot_accuracy"].selected["l2"]) == 3
        assert rows[f"{k}shot_accuracy"].train_size == 5 * k


def test_features_independent_of_labels_give_chance_within_the_error():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 60)
    x = rng.normal(size=(len(y), 32))
    ty = np.repeat(np.arange(4), 250)
    tx = rng.normal(size=(len(ty), 32))
    evaluator = create_evaluator("few_shot", shots=(5,), draws=10)
    rows = _rows(evaluator.evaluate(_set(x, y), _set(tx, ty)))
    mean, se = rows["5shot_accuracy"].value, rows["5shot_accuracy_se"].value
    assert se > 0
    assert abs(mean - 0.25) < 3 * se + 0.01  # chance, within the standard error


@pytest.mark.parametrize("n_per_class, dim", [(3, 40), (30, 8)])  # dual, primal
def test_the_closed_form_is_scikit_learns_ridge_classifier(n_per_class, dim):
    rng = np.random.default_rng(2)
    x, y = _gaussians(rng, n_per_class, 4, dim, signal=1.0)
    x = normalise(x)
    test = normalise(rng.normal(size=(50, dim)))
    classes = np.unique(y)
    solver = RidgeSolver(x, y, classes)
    assert solver.dual == (len(x) <= dim)
    for l2 in (1e-3, 0.1, 10.0):
        reference = RidgeClassifier(alpha=l2, solver="cholesky").fit(x, y)
        np.testing.assert_allclose(
            solver.decision(test, l2), reference.decision_function(test), atol=1e-8
        )
        np.testing.assert_array_equal(solver.predict(test, l2), reference.predict(test))


def test_the_regulariser_is_chosen_without_the_test_split():
    """Two test splits, one with a planted signal only the test split has:
    the chosen λ of every draw is the same for both (the test split is
    scored, never consulted), and the planted signal changes the score."""
    rng = np.random.default_rng(3)
    x, y = _gaussians(rng, 30, 3, 12, signal=0.7)
    tx, ty = _gaussians(np.random.default_rng(4), 40, 3, 12, signal=0.7)
    planted = tx.copy()
    planted[:, 0] = 10.0 * (ty - 1)  # a test-only signal in one dimension
    evaluator = create_evaluator("few_shot", shots=(2, 5), draws=4)
    plain = _rows(evaluator.evaluate(_set(x, y), _set(tx, ty)))
    spiked = _rows(evaluator.evaluate(_set(x, y), _set(planted, ty)))
    for k in (2, 5):
        assert (
            plain[f"{k}shot_accuracy"].selected == spiked[f"{k}shot_accuracy"].selected
        )
    assert any(
        plain[f"{k}shot_accuracy"].value != spiked[f"{k}shot_accuracy"].value
        for k in (2, 5)
    )


def test_draws_are_seeded_disjoint_and_refuse_too_small_classes():
    y = np.repeat(np.arange(3), 10)
    classes = np.unique(y)
    shot, val = draw_examples(y, classes, 4, 3, seed=7)
    again, _ = draw_examples(y, classes, 4, 3, seed=7)
    other, _ = draw_examples(y, classes, 4, 3, seed=8)
    np.testing.assert_array_equal(shot, again)
    assert not np.array_equal(shot, other)
    assert not set(shot) & set(val)
    assert np.bincount(y[shot]).tolist() == [4, 4, 4]
    assert np.bincount(y[val]).tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="fewer than 10 shots plus one"):
        draw_examples(y, classes, 10, 3, seed=0)


@pytest.mark.slow  # a real module through the harness (the shared cache)
def test_few_shot_rides_on_the_linear_probes_cached_features(tmp_path):
    import subprocess
    import sys

    import benchmark

    module = str(tmp_path / "module")  # the CI gate's deterministic module
    subprocess.run(
        [sys.executable, "-m", "benchmark.cli.ci_module", module],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    results = benchmark.evaluate(
        module,
        config="smoke_all",
        evaluations=["linear_probe", "few_shot"],
        cache_dir=str(tmp_path / "cache"),
        sandbox="off",
        report=None,
        image_size=16,
    )
    metrics = {r["metric"] for r in results.rows if r["evaluation"] == "few_shot"}
    assert metrics == {
        "1shot_accuracy",
        "1shot_accuracy_se",
        "5shot_accuracy",
        "5shot_accuracy_se",
    }
    five = results.value("few_shot", "5shot_accuracy")
    linear = results.value("linear_probe", "accuracy")
    assert 0.2 < five <= linear + 0.05  # 5 shots of digits: above chance
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one extraction each


def test_the_vtab1k_config_names_the_19_tasks_and_samples_1000():
    from benchmark.configs import vtab1k
    from benchmark.configs.config import load_config

    assert len(vtab1k.VTAB_TASKS) == 19
    assert len(vtab1k.DEFAULT_TASKS) == 12 and "tfds:dmlab" in vtab1k.DEFAULT_TASKS
    assert len(vtab1k.STRUCTURED) == 7
    built = {e.name: e for e in load_config("vtab1k").evaluators()}
    assert {"linear_probe", "fine_tune", "few_shot"} <= set(built)
    assert built["linear_probe"].train_examples == 1000
    assert built["fine_tune"].train_examples == 1000
    assert built["fine_tune"].learning_rates == (0.1, 0.01)


def test_the_linear_probe_fits_on_the_sampled_examples_only():
    rng = np.random.default_rng(5)
    x, y = _gaussians(rng, 100, 4, 8, signal=3.0)
    tx, ty = _gaussians(np.random.default_rng(5), 20, 4, 8, signal=3.0)  # same centres
    probe = create_evaluator("linear_probe", num_l2=5, train_examples=120)
    (m,) = probe.evaluate(_set(x, y), _set(tx, ty))
    assert m.train_size == 120 and m.value > 0.5


@pytest.mark.slow  # real CIFAR-10 images, a fine-tunable Keras file
def test_vtab1k_runs_end_to_end_on_real_images(shared_data, tmp_path):
    import benchmark
    from tests.test_module_formats import _classifier

    path = str(tmp_path / "classifier.keras")
    _classifier().save(path)
    results = benchmark.evaluate(
        path,
        config="vtab1k",
        datasets=[str(shared_data / "cifar10")],
        max_per_class=30,  # reduced size: 300 train / 300 test images
        overrides=(
            "linear_probe.train_examples=200",
            "fine_tune.train_examples=200",
            "fine_tune.steps=5",
            "fine_tune.batch_size=32",
            "few_shot.shots=1,5",
            "few_shot.draws=2",
        ),
        sandbox="off",
        report=None,
    )
    by = {(r["evaluation"], r["metric"]): r for r in results.rows}
    assert int(by["linear_probe", "accuracy"]["train_size"]) == 200
    assert int(by["fine_tune", "accuracy"]["train_size"]) == 200
    assert int(by["linear_probe", "accuracy"]["test_size"]) == 300
    assert ("few_shot", "5shot_accuracy") in by
    for row in results.rows:
        assert row["fingerprint"] and json.loads(row["protocol"])["config"] == "vtab1k"
