"""Oracle tests of the metrics, the validation split and the evaluators."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import optimize, special
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from benchmark.evaluators import create_evaluator, linear_probe
from benchmark.evaluators.class_separation import class_separation_r2
from benchmark.features.feature_set import FeatureSet
from benchmark.stats import logistic, metrics
from benchmark.stats.neighbours import knn_predict


def _feature_set(x, y):
    """Returns a FeatureSet of float32 features, int64 labels, str ids."""
    ids = np.array([f"ex{i}" for i in range(len(y))])
    return FeatureSet(np.asarray(x, np.float32), np.asarray(y, np.int64), ids)


def _clusters(n_per_class, num_classes=4, dim=8, seed=0):
    """Returns a FeatureSet of tight, well-separated clusters around scaled one-hots."""
    rng = np.random.RandomState(seed)
    y = np.repeat(np.arange(num_classes), n_per_class)
    x = 5.0 * np.eye(dim)[y] + 0.1 * rng.randn(len(y), dim)
    return _feature_set(x, y)


# ---------------------------------------------------------------- FeatureSet


def test_feature_set_validates_shapes_and_subsets():
    fs = _clusters(3)
    assert len(fs) == 12
    part = fs.subset(np.array([0, 5]))
    assert len(part) == 2 and list(part.ids) == ["ex0", "ex5"]
    with pytest.raises(ValueError, match="labels"):
        FeatureSet(np.zeros((3, 2)), np.zeros(2, np.int64), np.array(["a"] * 3))
    with pytest.raises(ValueError, match="features"):
        FeatureSet(np.zeros(3), np.zeros(3, np.int64), np.array(["a"] * 3))


# ------------------------------------------------------------------- metrics


def test_accuracies_on_a_hand_worked_example():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 0, 1, 1, 3, 2])  # 3 is not a true class.
    # Per-class recall: class 0: 3/4, class 1: 1/2, class 2: 1/1.
    assert metrics.mean_per_class_accuracy(labels, predictions) == pytest.approx(
        (0.75 + 0.5 + 1.0) / 3
    )
    assert metrics.top1_accuracy(labels, predictions) == pytest.approx(5 / 7)
    assert set(metrics.METRICS) == {"top1", "mean_per_class"}


def test_stratified_split_is_deterministic_with_per_class_counts():
    labels = np.repeat([0, 1, 2, 3, 4], [10, 5, 2, 1, 7])
    labels = np.random.RandomState(1).permutation(labels)
    train, val = metrics.stratified_split(labels, 0.2, seed=0)
    again_train, again_val = metrics.stratified_split(labels, 0.2, seed=0)
    np.testing.assert_array_equal(val, again_val)
    np.testing.assert_array_equal(train, again_train)
    assert sorted(np.concatenate([train, val])) == list(range(len(labels)))
    # round-half-up(0.2 n), at least 1 for n >= 2, none for singletons:
    # 10 -> 2, 5 -> 1, 2 -> 1 (0.4 rounds to 0), 1 -> 0, 7 -> 1 (1.4).
    counts = np.bincount(labels[val], minlength=5)
    np.testing.assert_array_equal(counts, [2, 1, 1, 0, 1])
    _, other_val = metrics.stratified_split(labels, 0.2, seed=1)
    assert set(other_val) != set(val)


# -------------------------------------------------------------- linear probe


def test_perfectly_separable_features_score_one():
    train, test = _clusters(20, seed=0), _clusters(10, seed=1)
    for name in ("linear_probe", "knn"):
        (measurement,) = create_evaluator(name).evaluate(train, test)
        assert measurement.metric == "accuracy"
        assert measurement.value == 1.0, name


def _objective(params, x, y, l2, num_classes):
    """Returns (sum_i CE_i + l2/2 ||W||^2, gradient) for flat params [W, b]."""
    w = params[: num_classes * x.shape[1]].reshape(num_classes, -1)
    b = params[num_classes * x.shape[1] :]
    logits = x @ w.T + b
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    onehot = np.eye(num_classes)[y]
    value = -np.sum(onehot * log_p) + 0.5 * l2 * np.sum(w**2)
    residual = np.exp(log_p) - onehot
    grad_w = residual.T @ x + l2 * w
    return value, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])


@pytest.mark.parametrize("num_classes", [2, 3])
def test_fit_minimises_the_papers_objective(num_classes):
    """_fit's two-class (softmax, two rows) and multi-class fits, with the
    bias unpenalised, reproduce a direct minimisation of the objective."""
    rng = np.random.RandomState(num_classes)
    y = np.arange(60) % num_classes
    x = rng.randn(60, 5) + 0.7 * np.eye(5)[y] + 2.0  # Offset: the bias matters.
    l2 = 3.0
    w, b = logistic.fit(x, y, l2, None, max_iter=1000, tol=1e-10)
    start = np.zeros(num_classes * 6)
    ref = optimize.minimize(
        _objective,
        start,
        args=(x, y, l2, num_classes),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 10000},
    )
    ours = np.concatenate([w.ravel(), b - b.mean()])
    theirs = ref.x.copy()
    theirs[-num_classes:] -= theirs[-num_classes:].mean()  # b is shift-invariant.
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def _relu_classes(n, dim, num_classes, seed):
    """Returns overlapping, offset ReLU features (x, y): a finite optimum exists
    for every lambda, including 1e-6, and the bias and centring matter."""
    rng = np.random.RandomState(seed)
    y = np.arange(n) % num_classes
    x = np.maximum(rng.randn(n, dim) + 0.8 * np.eye(dim)[y] + 0.5, 0.0)
    return x.astype(np.float32), y


def _objective_and_scipys(solution, x64, y, l2, num_classes):
    """Returns (the float64 objective at `solution`, scipy's minimum)."""
    ref = optimize.minimize(
        _objective,
        np.zeros(num_classes * (x64.shape[1] + 1)),
        args=(x64, y, l2, num_classes),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 20000},
    )
    params = np.concatenate([solution.weights.ravel(), solution.bias])
    return _objective(params, x64, y, l2, num_classes)[0], ref.fun


@pytest.mark.parametrize("num_classes", [2, 4])
def test_lbfgs_objective_matches_scipy(num_classes):
    x, y = _relu_classes(300, 10, num_classes, seed=num_classes)
    x64 = x.astype(np.float64)
    for l2 in (1e-6, 1e-2, 1.0, 1e3):
        solution = logistic.fit_logistic_regression(x, y, l2)
        ours, best = _objective_and_scipys(solution, x64, y, l2, num_classes)
        assert solution.status in ("converged", "no_progress"), l2
        assert ours == pytest.approx(best, rel=1e-8), l2
        # The reported objective is the float32 evaluation of the same value.
        assert solution.objective == pytest.approx(ours, rel=1e-5), l2


def _ill_conditioned(n, num_classes, seed):
    """ReLU features whose covariance spans five decades, with correlated
    and dead (always zero) columns: what slows the plain L-BFGS down."""
    x, y = _relu_classes(n, 12, num_classes, seed)
    mix = np.random.RandomState(seed).randn(12, 12)
    x = np.maximum(x @ mix, 0.0) * np.logspace(-2, 0.5, 12)
    return np.concatenate([x, np.zeros((n, 2))], 1).astype(np.float32), y


@pytest.mark.parametrize("num_classes", [2, 4])
def test_preconditioned_lbfgs_reaches_scipys_optimum_in_fewer_iterations(num_classes):
    x, y = _ill_conditioned(400, num_classes, seed=num_classes)
    x64 = x.astype(np.float64)
    rotation = logistic.Preconditioner(x)
    # The rotation is orthogonal and the covariance's: U^T S U = diag(e).
    np.testing.assert_allclose(rotation.basis.T @ rotation.basis, np.eye(14), atol=1e-9)
    np.testing.assert_allclose(
        np.cov(rotation.rotated.numpy(), rowvar=False, bias=True),
        np.diag(rotation.eigenvalues),
        atol=1e-4,
    )
    fewer = 0
    for l2 in (1e-3, 1.0, 1e2):
        plain = logistic.fit_logistic_regression(x, y, l2, max_iter=5000)
        solved = logistic.fit_logistic_regression(
            x, y, l2, max_iter=5000, rotation=rotation
        )
        ours, best = _objective_and_scipys(solved, x64, y, l2, num_classes)
        assert solved.status in ("converged", "no_progress"), l2
        assert ours == pytest.approx(best, rel=1e-6), l2
        np.testing.assert_allclose(solved.weights[:, -2:], 0.0, atol=1e-6)  # dead
        fewer += solved.iterations < plain.iterations
    assert fewer >= 2  # the point of it; never more iterations on most lambdas


def test_sweeps_precondition_where_it_pays_and_not_inside_the_switch():
    x, y = _ill_conditioned(400, 3, seed=0)
    assert logistic.Preconditioner.where_it_pays(tf.constant(x), 3) is not None
    wide = tf.zeros([50, 4000])  # an eigendecomposition of 4000 x 4000: no
    assert logistic.Preconditioner.where_it_pays(wide, 3) is None
    round_ = np.random.RandomState(0).randn(400, 14).astype(np.float32)
    assert logistic.Preconditioner(round_).spread() < 10  # well conditioned: no
    assert logistic.Preconditioner.where_it_pays(tf.constant(round_), 3) is None
    assert logistic.Preconditioner(x).spread() > 1e4
    with logistic.without_preconditioning():
        assert logistic.Preconditioner.where_it_pays(tf.constant(x), 3) is None
    assert logistic.Preconditioner.where_it_pays(tf.constant(x), 3) is not None


def test_carried_probabilities_are_renormalised_each_step():
    """The solver carries softmax probabilities from step to step; a row whose
    sum drifted from 1 (float32 rounding on saturated rows) comes back
    summing to 1, so the drift cannot grow into NaN over hundreds of
    iterations (it did on a Chexpert pathology at lambda 2e-5), and the
    change of log-sum-exp stays exact for rows that did not drift."""
    rng = np.random.RandomState(0)
    logits = rng.randn(6, 3) * 8.0  # saturated rows
    probs = tf.nn.softmax(tf.constant(logits, tf.float32))
    shift = 0.5 * rng.randn(6, 3)
    change, moved = logistic._near_shift(
        probs * (1.0 + 1e-3), tf.constant(shift, tf.float32)
    )
    np.testing.assert_allclose(tf.reduce_sum(moved, 1).numpy(), 1.0, rtol=1e-6)
    change, moved = logistic._near_shift(probs, tf.constant(shift, tf.float32))
    exact = special.logsumexp(logits + shift, axis=1) - special.logsumexp(
        logits, axis=1
    )
    np.testing.assert_allclose(change.numpy(), exact, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        moved.numpy(), special.softmax(logits + shift, 1), atol=1e-6
    )


def test_lbfgs_float32_solution_equals_float64():
    x, y = _relu_classes(200, 6, 3, seed=0)
    single = logistic.fit_logistic_regression(x, y, 0.1)
    double = logistic.fit_logistic_regression(x, y, 0.1, dtype=tf.float64)
    np.testing.assert_allclose(single.weights, double.weights, atol=1e-4)
    np.testing.assert_allclose(single.bias, double.bias, atol=1e-4)


def test_lbfgs_xla_compiled_solution_equals_the_graph_one():
    x, y = _relu_classes(120, 5, 3, seed=2)
    graph = logistic.fit_logistic_regression(x, y, 0.1)
    xla = logistic.fit_logistic_regression(x, y, 0.1, jit_compile=True)
    np.testing.assert_allclose(xla.weights, graph.weights, atol=1e-4)
    np.testing.assert_allclose(xla.bias, graph.bias, atol=1e-4)


def test_lbfgs_warm_start_from_the_optimum_takes_no_step():
    x, y = _relu_classes(200, 6, 3, seed=1)
    first = logistic.fit_logistic_regression(x, y, 1.0, tol=1e-5)
    again = logistic.fit_logistic_regression(
        x, y, 1.0, (first.weights, first.bias), tol=1e-5
    )
    assert first.iterations > 5 and again.iterations == 0
    np.testing.assert_array_equal(again.weights, first.weights)
    budget = logistic.fit_logistic_regression(x, y, 1.0, max_iter=3)
    assert (budget.iterations, budget.status) == (3, "max_iter")


def test_warm_started_sweep_selects_the_cold_started_lambda():
    x, y = make_classification(
        n_samples=400,
        n_features=20,
        n_informative=8,
        n_classes=3,
        class_sep=0.7,
        random_state=1,
    )
    x = np.maximum(x, 0.0).astype(np.float32)  # Non-negative, like ReLU features.
    tr, val = metrics.stratified_split(y, 0.2, 0)
    grid = linear_probe.LinearProbe().l2_grid()
    selected = [
        logistic.select_l2(
            x[tr],
            y[tr],
            x[val],
            y[val],
            grid,
            lambda params, vx, vy: metrics.top1_accuracy(
                vy, logistic.predict(params, vx)
            ),
            warm_start=warm,
        )
        for warm in (True, False)
    ]
    warm, cold = selected
    assert (warm.value, warm.score) == (cold.value, cold.score)
    np.testing.assert_allclose(warm.params[0], cold.params[0], atol=1e-3)


def test_select_l2_records_ties_and_keeps_the_larger_lambda():
    # Two far-apart clusters: every lambda up to a point separates validation
    # perfectly (a saturated split), so many candidates tie at 1.0.
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1], 30)
    x = (np.eye(2)[y] * 4.0 + 0.1 * rng.randn(60, 2)).astype(np.float32)
    tr, val = metrics.stratified_split(y, 0.2, 0)
    grid = logistic.l2_grid(12, 1e-4, 1e7)
    chosen = logistic.select_l2(
        x[tr],
        y[tr],
        x[val],
        y[val],
        grid,
        lambda params, vx, vy: metrics.top1_accuracy(vy, logistic.predict(params, vx)),
    )
    scores = []
    for l2 in grid:  # Each tie candidate fitted independently (cold start).
        params = logistic.fit(x[tr], y[tr], l2)
        scores.append(metrics.top1_accuracy(y[val], logistic.predict(params, x[val])))
    tied = [l2 for l2, v in zip(grid, scores) if v == 1.0]
    assert chosen.score == 1.0 and chosen.ties == len(tied) > 1
    assert chosen.value == pytest.approx(max(tied))  # The larger lambda wins.
    assert chosen.tied_range == pytest.approx([min(tied), max(tied)])
    selected = chosen.selected("l2", "val_accuracy")
    assert (
        selected["ties"] == len(tied) and selected["tied_l2_range"][1] == selected["l2"]
    )


def _reference_linear_probe(train_x, train_y, test_x, test_y):
    """Returns test top-1 of an independently written sweep (sklearn warm start)."""
    tr, val = metrics.stratified_split(train_y, 0.2, 0)
    model = LogisticRegression(solver="lbfgs", warm_start=True, max_iter=1000, tol=1e-6)
    best_l2, best_acc = None, -1.0
    for l2 in np.logspace(-6, 5, 45)[::-1]:
        model.set_params(C=1.0 / l2).fit(train_x[tr], train_y[tr])
        acc = np.mean(model.predict(train_x[val]) == train_y[val])
        if acc > best_acc:
            best_l2, best_acc = l2, acc
    final = LogisticRegression(C=1.0 / best_l2, max_iter=1000, tol=1e-6)
    final.fit(train_x, train_y)
    return np.mean(final.predict(test_x) == test_y)


def test_linear_probe_matches_a_reference_sweep():
    x, y = make_classification(
        n_samples=800,
        n_features=32,
        n_informative=12,
        n_redundant=4,
        n_classes=4,
        class_sep=0.8,
        random_state=0,
    )
    x = x.astype(np.float32)  # FeatureSets hold float32; share the rounding.
    train, test = _feature_set(x[:450], y[:450]), _feature_set(x[450:], y[450:])
    (measurement,) = create_evaluator("linear_probe").evaluate(train, test)
    expected = _reference_linear_probe(
        x[:450].astype(np.float64), y[:450], x[450:].astype(np.float64), y[450:]
    )
    assert abs(measurement.value - expected) <= 0.003
    assert 1e-6 <= measurement.selected["l2"] <= 1e5
    assert 0.0 < measurement.selected["val_accuracy"] <= 1.0


# ----------------------------------------------------------------------- kNN


def test_knn_predict_matches_sklearn_brute_cosine():
    rng = np.random.RandomState(0)
    train_x, query_x = rng.randn(300, 16), rng.randn(120, 16)
    train_y = rng.randint(0, 3, size=300)
    ours = knn_predict(train_x, train_y, query_x, k=5, weighted=False, chunk_size=17)
    sk = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute")
    sk.fit(train_x, train_y)
    # sklearn breaks vote ties toward the lowest label, we toward the larger
    # summed similarity, so compare exactly where the vote has one winner.
    votes = np.stack(
        [
            np.bincount(train_y[n], minlength=3)
            for n in sk.kneighbors(query_x, return_distance=False)
        ]
    )
    clear = (votes == votes.max(axis=1, keepdims=True)).sum(axis=1) == 1
    assert clear.sum() > 60
    np.testing.assert_array_equal(ours[clear], sk.predict(query_x)[clear])
    assert np.all(votes[np.arange(len(ours)), ours] == votes.max(axis=1))


def test_knn_predict_equals_sklearn_on_two_classes():
    # Two classes and odd k: no vote ties, so every prediction must agree.
    rng = np.random.RandomState(1)
    train_x, query_x = rng.randn(200, 16), rng.randn(100, 16)
    train_y = rng.randint(0, 2, size=200) * 3 + 4  # Labels 4 and 7.
    ours = knn_predict(train_x, train_y, query_x, k=5, chunk_size=32)
    sk = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute")
    np.testing.assert_array_equal(ours, sk.fit(train_x, train_y).predict(query_x))


def test_weighted_knn_equals_sklearn_with_similarity_weights():
    # Our weighted vote sums cosine similarities: sklearn's weighted vote with
    # weights = 1 - cosine distance. Real-valued sums leave no ties.
    rng = np.random.RandomState(2)
    train_x, query_x = rng.randn(250, 16), rng.randn(100, 16)
    train_y = rng.randint(0, 4, size=250)
    sk = KNeighborsClassifier(
        n_neighbors=7,
        metric="cosine",
        algorithm="brute",
        weights=lambda distance: 1.0 - distance,
    )
    ours = knn_predict(train_x, train_y, query_x, k=7, weighted=True, chunk_size=13)
    np.testing.assert_array_equal(ours, sk.fit(train_x, train_y).predict(query_x))


def test_knn_predictions_do_not_depend_on_the_chunk_size():
    rng = np.random.RandomState(3)
    train_x, query_x = rng.randn(90, 8), rng.randn(40, 8)
    train_y = rng.randint(0, 3, size=90)
    runs = [knn_predict(train_x, train_y, query_x, 5, chunk_size=c) for c in (1, 7, 64)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run, runs[0])
    with pytest.raises(ValueError, match="chunk_size"):
        create_evaluator("knn", chunk_size=0)


def test_knn_vote_ties_go_to_similarity_then_lowest_label():
    train_x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    train_y = np.array([0, 1, 2])
    # One vote each for classes 0 and 1; class 1 is more similar.
    query = np.array([[0.6, 0.8]])
    assert knn_predict(train_x, train_y, query, k=2)[0] == 1
    # Equal similarity to classes 0 and 1: the lowest label wins.
    query = np.array([[1.0, 1.0]])
    assert knn_predict(train_x, train_y, query, k=2)[0] == 0
    # Two weak votes for 5 beat one strong vote for 7 unless votes are weighted.
    train_x = np.array([[1.0, 0.1], [1.0, -0.1], [0.0, 1.0]])
    train_y = np.array([5, 5, 7])
    query = np.array([[0.2, 1.0]])
    assert knn_predict(train_x, train_y, query, k=3, weighted=False)[0] == 5
    assert knn_predict(train_x, train_y, query, k=3, weighted=True)[0] == 7


def test_knn_selects_k_on_validation_within_the_memory_size():
    train, test = _clusters(5, seed=0), _clusters(3, seed=1)
    (measurement,) = create_evaluator("knn", ks=(1, 1000)).evaluate(train, test)
    # 20 training rows minus a 4-row validation split leave 16 neighbours.
    assert measurement.selected["k"] in (1, 16)


# ---------------------------------------------------------- class separation


def _pairwise_r2(x, y):
    """Returns R^2 from eq. 11's pairwise sums, by brute force."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    dist = 1.0 - unit @ unit.T
    classes = np.unique(y)
    k = len(classes)
    d_within = sum(
        dist[np.ix_(y == c, y == c)].sum() / (k * np.sum(y == c) ** 2) for c in classes
    )
    d_total = sum(
        dist[np.ix_(y == a, y == c)].sum() / (k**2 * np.sum(y == a) * np.sum(y == c))
        for a in classes
        for c in classes
    )
    return 1.0 - d_within / d_total


def test_class_separation_equals_the_pairwise_definition():
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], [4, 6, 5])
    x = rng.randn(15, 7) + 0.8 * np.eye(7)[y]
    assert class_separation_r2(x, y) == pytest.approx(_pairwise_r2(x, y), abs=1e-12)


def test_class_separation_is_one_for_collapsed_classes():
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2, 3], 5)
    # Every example of a class points the same way; norms vary (cosine ignores).
    x = np.eye(6)[y] * rng.uniform(0.5, 3.0, size=(20, 1))
    assert class_separation_r2(x, y) == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------- registry


def test_protocol_records_every_setting():
    protocol = create_evaluator("linear_probe", num_l2=3, data="cifar10").protocol()
    assert protocol == {
        "evaluator": "linear_probe",
        "max_per_class": None,
        "num_l2": 3,
        "l2_min": 1e-6,
        "l2_max": 1e5,
        "val_fraction": 0.2,
        "val_seed": 0,
        "max_iter": 1000,
        "tol": 1e-6,
        "train_examples": None,
        "sample_seed": 0,
    }
    assert create_evaluator("knn").protocol()["ks"] == [1, 3, 5, 10, 20, 50, 100]
