"""Oracle and golden tests of the representation analyses: CKA against a
full-batch unbiased CKA written here in numpy, neural collapse on a collapsed
simplex-ETF feature set and on random features, sparsity on hand-made
activations, streamed statistics against one-shot numpy; then the engine and
zoo-analyze on a real exported module. Every registered analysis must have an
oracle here."""

import json
import os
import sys

import numpy as np
import pytest

from benchmark.analyses import create_analysis, list_analyses
from benchmark.analyses.base import FEATURES
from benchmark.analyses.cka import hsic_matrix, unbiased_hsic
from benchmark.analyses.neural_collapse import LOGITS, Moments, nc1
from benchmark.evaluators.class_separation import class_separation_r2

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------- reference code


def reference_unbiased_cka(x, y):
    """Full-batch unbiased linear CKA, written from the formula: HSIC_1 with
    explicit loops over the terms (no shared code with benchmark/)."""

    def hsic(k, m):
        n = len(k)
        k = k - np.diag(np.diag(k))
        m = m - np.diag(np.diag(m))
        one = np.ones(n)
        value = np.trace(k @ m)
        value += (one @ k @ one) * (one @ m @ one) / ((n - 1) * (n - 2))
        value -= 2.0 / (n - 2) * (one @ k @ m @ one)
        return value / (n * (n - 3))

    k, m = x @ x.T, y @ y.T
    return hsic(k, m) / np.sqrt(hsic(k, k) * hsic(m, m))


def _run(analysis, chunks, layers=None, heads=None, second=None):
    """Feeds `chunks` [(outputs, labels)] to an analysis; returns its result."""
    layers = layers or {k: list(v) for k, v in chunks[0][0].items()}
    analysis.start(layers)
    for outputs, labels in chunks:
        analysis.update(outputs, labels)
    if hasattr(analysis, "end_pass"):
        analysis.end_pass()
    for outputs, labels in second or []:
        analysis.second(outputs, labels)
    return analysis.finish(heads or {})


def _cka_of(x, y, batch_size, chunk=100):
    """Streams x, y through the cka analysis; returns CKA(x, y)."""
    analysis = create_analysis("cka", batch_size=batch_size)
    chunks = [
        ({"a": {"x": x[i : i + chunk]}, "b": {"y": y[i : i + chunk]}}, None)
        for i in range(0, len(x), chunk)
    ]
    result = _run(analysis, chunks)
    pair = next(p for p in result.data["pairs"] if p["a"] == "a" and p["b"] == "b")
    return pair["matrix"][0][0], result


# ------------------------------------------------------------------------- CKA

RNG = np.random.default_rng(0)


def test_unbiased_hsic_matrix_equals_the_pairwise_formula():
    grams = [(lambda x: x @ x.T)(RNG.normal(size=(20, d))) for d in (3, 5, 8)]
    fast = hsic_matrix(grams)
    for i, k in enumerate(grams):
        for j, m in enumerate(grams):
            assert fast[i, j] == pytest.approx(unbiased_hsic(k, m), rel=1e-10)


def test_cka_of_a_representation_with_itself_is_one():
    x = RNG.normal(size=(600, 16))
    value, _ = _cka_of(x, x, batch_size=200)
    assert value == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    x = RNG.normal(size=(600, 12))
    y = x @ RNG.normal(size=(12, 8)) + 0.5 * RNG.normal(size=(600, 8))
    q, _ = np.linalg.qr(RNG.normal(size=(8, 8)))
    base, _ = _cka_of(x, y, batch_size=200)
    assert 0.3 < base < 0.99
    assert _cka_of(x, 7.5 * y @ q, batch_size=200)[0] == pytest.approx(base, abs=1e-10)


def test_cka_of_independent_features_is_near_zero():
    x, y = RNG.normal(size=(1500, 64)), RNG.normal(size=(1500, 64))
    value, _ = _cka_of(x, y, batch_size=1500)
    assert abs(value) < 0.05


def test_minibatch_cka_is_close_to_the_full_batch_estimate():
    latent = RNG.normal(size=(3000, 10))
    x = latent @ RNG.normal(size=(10, 40)) + RNG.normal(size=(3000, 40))
    y = np.tanh(latent @ RNG.normal(size=(10, 30))) + 0.5 * RNG.normal(size=(3000, 30))
    value, result = _cka_of(x, y, batch_size=500)
    assert result.data["minibatches"] == 6 and result.data["dropped_examples"] == 0
    assert abs(value - reference_unbiased_cka(x, y)) < 0.01


def test_cka_drops_and_records_the_remainder_and_needs_one_minibatch():
    x = RNG.normal(size=(250, 4))
    _, result = _cka_of(x, x, batch_size=100, chunk=30)
    assert result.data["minibatches"] == 2 and result.data["dropped_examples"] == 50
    from benchmark.analyses import AnalysisError

    with pytest.raises(AnalysisError, match="no complete minibatch"):
        _cka_of(x, x, batch_size=300)


def test_cka_summary_averages_the_same_layer_values_of_distinct_modules():
    x = RNG.normal(size=(400, 6))
    noise = RNG.normal(size=(400, 6))
    analysis = create_analysis("cka", batch_size=200)
    chunks = [
        (
            {
                "a": {"l1": x, FEATURES: x},
                "b": {"l1": x, FEATURES: noise},
            },
            None,
        )
    ]
    result = _run(analysis, chunks)
    summary = result.data["summary"]
    assert summary["l1"] == pytest.approx(1.0) and abs(summary[FEATURES]) < 0.1
    assert {(r[0], r[1]) for r in result.scalars} == {
        ("a", "cka:l1"),
        ("a", "cka"),
        ("b", "cka:l1"),
        ("b", "cka"),
    }


# ------------------------------------------------------------- neural collapse


def _simplex_etf(k, d):
    """Returns K unit vectors in d dims forming a simplex ETF."""
    m = np.eye(k) - np.ones((k, k)) / k
    basis, _ = np.linalg.qr(RNG.normal(size=(d, k)))
    vectors = (basis @ m).T
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _collapse(features, labels, w, logits):
    analysis = create_analysis("neural_collapse")
    chunks = [({"m": {FEATURES: features}}, labels)]
    second = [({"m": {FEATURES: features, LOGITS: logits}}, labels)]
    result = _run(analysis, chunks, heads={"m": (w, None)}, second=second)
    return result.data["modules"]["m"][FEATURES]


def test_neural_collapse_is_zero_on_a_collapsed_simplex_etf():
    k, d = 6, 16
    means = 3.0 * _simplex_etf(k, d)
    labels = np.repeat(np.arange(k), 20)
    features = means[labels] + 1e-9 * RNG.normal(size=(len(labels), d))
    w = 2.0 * means  # self-dual classifier
    values = _collapse(features, labels, w, features @ w.T)
    for metric in ("nc1", "nc2", "nc3", "nc4"):
        assert values[metric] == pytest.approx(0.0, abs=1e-6), metric


def test_neural_collapse_is_far_from_zero_on_random_features():
    k, d = 6, 16
    labels = np.repeat(np.arange(k), 50)
    features = RNG.normal(size=(len(labels), d))
    w = RNG.normal(size=(k, d))
    values = _collapse(features, labels, w, features @ w.T)
    assert values["nc1"] > 1.0
    assert values["nc2"] > 0.3 and values["nc3"] > 0.3 and values["nc4"] > 0.3


def test_streamed_moments_equal_the_one_shot_statistics():
    labels = RNG.integers(0, 4, size=500)
    h = RNG.normal(size=(500, 7)) + labels[:, None]
    moments = Moments()
    for i in range(0, 500, 73):
        moments.add(h[i : i + 73], labels[i : i + 73])
    classes, means, mu_g, sigma_w, sigma_b = moments.statistics()
    expected_means = np.stack([h[labels == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(means, expected_means, atol=1e-12)
    np.testing.assert_allclose(mu_g, h.mean(0), atol=1e-12)
    within = sum(
        (h[labels == c] - expected_means[c]).T @ (h[labels == c] - expected_means[c])
        for c in range(4)
    )
    np.testing.assert_allclose(sigma_w, within / 500, atol=1e-10)
    centred = expected_means - h.mean(0)
    np.testing.assert_allclose(sigma_b, centred.T @ centred / 4, atol=1e-12)
    expected = np.trace(within / 500 @ np.linalg.pinv(centred.T @ centred / 4)) / 4
    assert nc1(sigma_w, sigma_b, 4) == pytest.approx(expected, rel=1e-6)


# -------------------------------------------------------------------- sparsity


def test_sparsity_counts_every_element_of_hand_made_activations():
    raw = np.zeros((2, 2, 2, 3))
    raw[0, 0, 0, :] = 1.0  # 3 of 24 non-zero
    features = np.array([[0.0, 1.0, 2.0, 0.0], [3.0, 0.0, 0.0, 0.0]])  # 3 of 8
    analysis = create_analysis("sparsity")
    chunks = [({"m": {"block": raw, FEATURES: features}}, None)] * 2
    result = _run(analysis, chunks)
    assert result.data["modules"]["m"] == {"block": 3 / 24, FEATURES: 3 / 8}
    assert ("m", "nonzero_fraction", 3 / 8, {}) in result.scalars
    assert ("m", "nonzero_fraction:block", 3 / 24, {}) in result.scalars


# ------------------------------------------------------------ class separation


def test_streamed_class_separation_equals_the_one_shot_evaluator():
    labels = RNG.integers(0, 5, size=400)
    features = RNG.normal(size=(400, 9)) + 2.0 * np.eye(9)[labels]
    analysis = create_analysis("class_separation")
    chunks = [
        ({"m": {FEATURES: features[i : i + 64]}}, labels[i : i + 64])
        for i in range(0, 400, 64)
    ]
    result = _run(analysis, chunks)
    expected = class_separation_r2(features, labels)
    assert result.data["modules"]["m"][FEATURES] == pytest.approx(expected, abs=1e-12)


ORACLES = {
    "cka": test_minibatch_cka_is_close_to_the_full_batch_estimate,
    "neural_collapse": test_neural_collapse_is_zero_on_a_collapsed_simplex_etf,
    "sparsity": test_sparsity_counts_every_element_of_hand_made_activations,
    "class_separation": test_streamed_class_separation_equals_the_one_shot_evaluator,
}


def test_every_registered_analysis_has_an_oracle_test_and_a_formula():
    assert set(list_analyses()) == set(ORACLES)
    from benchmark.analyses import ANALYSES

    for name in list_analyses():
        factory = ANALYSES.get(name)
        module = sys.modules[factory.__module__]
        assert "=" in (module.__doc__ or ""), f"{name} documents no formula"
        assert create_analysis(name).protocol()["analysis"] == name


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("cka", {"batch_size": 2}, "at least 4"),
        ("cka", {"passes": 0}, "positive integer"),
        ("cka", {"bogus": 1}, "bad settings"),
    ],
)
def test_bad_settings_are_one_line(name, settings, message):
    from benchmark.analyses import AnalysisError

    with pytest.raises(AnalysisError, match=message):
        create_analysis(name, **settings)


# ---------------------------------------------------------- engine and the CLI


def test_zoo_analyze_writes_json_figures_and_rows(exported_module, tmp_path, warm):
    """zoo-analyze on the real exported digits module against itself under
    another name: every block is a layer, CKA's diagonal is 1, every file and
    row is written with provenance."""
    board = tmp_path / "board.csv"
    out = tmp_path / "out"
    result = warm.run(
        "benchmark.cli.analyze",
        f"--modules={exported_module[0]},{exported_module[0]}",
        "--config=smoke",
        f"--out={out}",
        f"--leaderboard={board}",
        "--max_per_class=60",
        "--set=cka.batch_size=100",
    )
    assert result.returncode == 0, result.stderr
    files = set(os.listdir(out))
    assert {
        "cka.json",
        "sparsity.json",
        "neural_collapse.json",
        "class_separation.json",
        "summary.json",
        "class_separation.png",
        "sparsity.png",
        "neural_collapse.png",
    } <= files
    assert any(f.startswith("cka_") and f.endswith(".png") for f in files)
    cka = json.loads((out / "cka.json").read_text())
    cross = next(p for p in cka["pairs"] if p["a"] != p["b"])
    assert len(cross["layers_a"]) > 10 and cross["layers_a"][0] == "stem"
    assert all(v == pytest.approx(1.0) for v in cross["same_layer"].values())
    assert cka["dropped_examples"] == 300 % 100
    nc = json.loads((out / "neural_collapse.json").read_text())
    penultimate = next(iter(nc["modules"].values()))[FEATURES]
    assert {"nc1", "nc2", "nc3", "nc4"} <= set(penultimate)
    from benchmark.results import leaderboard

    rows = leaderboard.read_rows(str(board))
    metrics = {(r["evaluation"], r["metric"]) for r in rows}
    assert ("sparsity", "nonzero_fraction") in metrics
    assert ("neural_collapse", "nc1") in metrics and ("cka", "cka:stem") in metrics
    assert all(r["module_sha256"] == exported_module[1] for r in rows)
    protocol = json.loads(rows[0]["protocol"])
    assert protocol["config"] == "smoke" and "input" in protocol


# --------------------------------------------- rank correlation (Figure 1)


def test_spearman_rho_against_hand_computed_values():
    from benchmark.stats.metrics import ranks, spearman_rho, spearman_with_interval

    assert list(ranks([10, 20, 20, 5])) == [2.0, 3.5, 3.5, 1.0]
    assert spearman_rho([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman_rho([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # d = rank differences (0, 0, 1, -1): rho = 1 - 6 sum d^2 / (n (n^2 - 1)) = 0.8
    assert spearman_rho([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(0.8)
    rho, low, high = spearman_with_interval(np.arange(20), np.arange(20) ** 2)
    assert rho == pytest.approx(1.0) and low == pytest.approx(1.0)
    noisy = np.arange(30) + RNG.normal(scale=10, size=30)
    rho, low, high = spearman_with_interval(np.arange(30), noisy)
    assert low <= rho <= high and high - low > 0.05


def test_spearman_interval_equals_one_draw_at_a_time():
    """Oracle: the interval computed for all resampled pairs at once equals
    spearman_rho per draw through bootstrap_interval (ties, and draws where
    one side is constant and so left out, included)."""
    from benchmark.stats import metrics

    x = np.round(RNG.normal(size=9), 0)  # few distinct values: ties, nans
    y = x + RNG.normal(scale=0.5, size=9)
    rho, low, high = metrics.spearman_with_interval(x, y, resamples=300, seed=4)
    loop = metrics.bootstrap_interval(
        lambda i: metrics.spearman_rho(x[i], y[i]), 9, resamples=300, seed=4
    )
    assert rho == metrics.spearman_rho(x, y)
    np.testing.assert_allclose((low, high), loop, rtol=0, atol=1e-12)


def test_the_papers_modules_show_the_negative_rank_correlation():
    """The committed leaderboard's reported rows (the paper's Table 3 R^2 and
    linear transfer of its 26 modules) give a clearly negative rho."""
    from benchmark.report import plot
    from benchmark.results import leaderboard

    rows = leaderboard.read_rows(os.path.join(REPO, "leaderboard.csv"))
    points = plot.separation_points(rows)["reported"]
    rho, low, high = plot.rank_correlation(points)
    assert len(points) == 26
    assert rho < -0.8 and high < 0


def test_a_foreign_module_is_analysed_on_what_it_offers(tmp_path):
    """A module with only a feature vector (no endpoints, no logits) gets
    every analysis on its one layer `features`; NC2-NC4 need a classifier and
    are left out."""
    import tensorflow as tf

    from benchmark.data.transfer import load_benchmark_dataset
    from benchmark.modules.loading import load_module
    from benchmark.runner.analyze import analyze, module_layers

    class Foreign(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([48, 8], seed=[3, 4]))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def __call__(self, images):
            x = tf.reshape(tf.image.resize(images, [4, 4]), [-1, 48])
            return tf.nn.relu(tf.matmul(x, self.w))

    tf.saved_model.save(Foreign(), str(tmp_path / "foreign"))
    module = load_module(str(tmp_path / "foreign"), image_size=16)
    assert module_layers(module) == [FEATURES]
    analyses = [
        create_analysis(n, **({"batch_size": 64} if n == "cka" else {}))
        for n in list_analyses()
    ]
    results, total = analyze(
        {"f": module},
        load_benchmark_dataset("digits_0to4"),
        "test",
        analyses,
        batch_size=32,
        report=lambda line: None,
    )
    assert total == 180  # digits 0-4: 20% of each class
    assert set(results["neural_collapse"].data["modules"]["f"][FEATURES]) == {"nc1"}
    sparsity = results["sparsity"].data["modules"]["f"][FEATURES]
    assert 0.0 < sparsity < 1.0  # a ReLU output: some zeros, some not
    assert results["cka"].data["pairs"][0]["matrix"] == [[pytest.approx(1.0)]]
