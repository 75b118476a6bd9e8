"""Wall time of the linear-probe protocol: this project's TF L-BFGS vs scikit-learn.

Measures, in one process on the same features, the full 45-lambda protocol of
`benchmark.evaluators.linear_probe` (lambda in logspace(-6, 5, 45) swept from
the largest, warm-started, chosen on the fixed stratified 20% validation
split, refit on train + validation, top-1 on test) run by

  (a) `LinearProbe().evaluate` (TensorFlow L-BFGS, float32), after a one-time
      tf.function trace on a tiny problem (timed and printed separately);
  (b) the baseline: scikit-learn's LogisticRegression(solver="lbfgs",
      warm_start=True), float64, C = 1 / lambda (2 / lambda for two classes),
      the same tol and max_iter, grid, split, tie-breaking and warm-started
      refit: the evaluator's solver before this project's L-BFGS.

Prints each wall time, the ratio baseline / ours and both test accuracies
(they must agree within 0.3 points; the script exits 1 otherwise).

Features are synthetic and deterministic (--seed), shaped like penultimate
activations: class means drawn in a 32-d latent space, mapped to d dimensions
by a fixed random matrix, plus per-example latent and per-feature Gaussian
noise, then a ReLU (non-negative, about 60% zeros, mean about 0.4); test accuracy
is about 73% for 10 classes, neither chance nor 100%.

With --compare_plain, ours also runs without the preconditioner (the solver
before it), on the same features.

Also printed: peak memory (the process's peak resident set after the
features, after ours, after the baseline), and the floor set by the
solver's own arithmetic: every L-BFGS solve's iterations (plus one for the
start) times the two [n, d] x [d, K] float32 products of an iteration, each
timed on this machine in the same run; ratio ours / floor (goal <= 2).

Command (about 12 minutes on 2 shared CPU cores, 11 of them the baseline):
  .venv/bin/python perf/linear_probe.py
  # The paper's largest size (CIFAR-100): the baseline sweeps a subset.
  .venv/bin/python perf/linear_probe.py --n 50000 --classes 100 --baseline_every 4
  # ... with the mini-zoo config's 15 lambdas, the baseline on the largest 5.
  .venv/bin/python perf/linear_probe.py --n 50000 --classes 100 --num_l2 15 \\
      --baseline_first 5
  .venv/bin/python perf/linear_probe.py --n 717 --d 256 --classes 5  # demo size
  # Real features from a benchmark feature cache, ours with and without the
  # preconditioner, no baseline:
  .venv/bin/python perf/linear_probe.py --features=TRAIN.npz,TEST.npz \
      --num_l2 15 --skip_baseline --compare_plain

Measured (2 CPU cores shared with other jobs, TF 2.21, scikit-learn 1.9.1):
  10,000 x 2,048, 10 classes: ours 40.3 s, sklearn 659.8 s (16.4x); test
    top-1 72.72% both, lambda 5.62e3 both.
  717 x 256, 5 classes: ours 0.6 s, sklearn 73.6 s (115x); 81.56% both.
  The one-time trace adds about 3 s per process.
"""

import argparse
import resource
import statistics
import sys
import time
import warnings

import numpy as np
import tensorflow as tf
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from benchmark.evaluators import linear_probe
from benchmark.features.feature_set import FeatureSet
from benchmark.stats import logistic, metrics

LATENT_DIM = 32


def make_features(n, d, classes, seed, separation=0.4):
    """Returns (x [n, d] float32, y [n] int64): ReLU features of noisy classes.

    x = relu(z A + offset + noise), z = separation * mu_y + N(0, I_32) with
    class means mu_k ~ N(0, I_32), A ~ N(0, 1 / 32) [32, d], offset ~
    N(-0.5, 0.3^2) [d] and noise ~ N(0, I_d); labels uniform over `classes`.
    The class means, A and offset depend on `seed` only, so two calls with the
    same seed and different n draw from one distribution (a train/test pair).
    """
    rng = np.random.RandomState(seed)
    means = separation * rng.randn(classes, LATENT_DIM)
    projection = rng.randn(LATENT_DIM, d) / np.sqrt(LATENT_DIM)
    offset = -0.5 + 0.3 * rng.randn(d)
    draw = np.random.RandomState([seed, n])
    y = draw.randint(0, classes, size=n)
    z = means[y] + draw.randn(n, LATENT_DIM)
    x = np.maximum(z @ projection + offset + draw.randn(n, d), 0.0)
    return x.astype(np.float32), y.astype(np.int64)


def sklearn_linear_probe(train_x, train_y, test_x, test_y, evaluator, grid=None):
    """Returns (test top-1, lambda) of the protocol run with sklearn's lbfgs
    over `grid` (default: the evaluator's)."""
    x, y = train_x.astype(np.float64), train_y
    tr, val = metrics.stratified_split(y, evaluator.val_fraction, evaluator.val_seed)
    # sklearn minimises C sum_i loss_i + ||w||^2 / 2 (intercept unpenalised);
    # with two classes it fits one logit difference, whose penalty is l2 / 4.
    scale = 2.0 if len(np.unique(y)) == 2 else 1.0
    model = LogisticRegression(
        solver="lbfgs", warm_start=True, max_iter=evaluator.max_iter, tol=evaluator.tol
    )
    best_l2, best_score, best_params = None, -np.inf, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for l2 in evaluator.l2_grid() if grid is None else grid:
            model.set_params(C=scale / l2).fit(x[tr], y[tr])
            score = metrics.top1_accuracy(y[val], model.predict(x[val]))
            if score > best_score:
                params = (model.coef_.copy(), model.intercept_.copy())
                best_l2, best_score, best_params = l2, score, params
        # Refit warm-started from the selected solution, like the evaluator.
        model.set_params(C=scale / best_l2)
        model.coef_, model.intercept_ = best_params
        model.fit(x, y)
    accuracy = metrics.top1_accuracy(test_y, model.predict(test_x.astype(np.float64)))
    return accuracy, best_l2


def ours_on_grid(train_x, train_y, test_x, test_y, evaluator, grid):
    """Returns (test top-1, lambda) of this project's solver over `grid`
    (the same sweep, selection and refit as the evaluator)."""
    tr, val = metrics.stratified_split(
        train_y, evaluator.val_fraction, evaluator.val_seed
    )
    params, chosen = logistic.select_and_refit(
        train_x,
        train_y,
        tr,
        val,
        grid,
        lambda p, vx, vy: metrics.top1_accuracy(vy, logistic.predict(p, vx)),
        max_iter=evaluator.max_iter,
        tol=evaluator.tol,
    )
    accuracy = metrics.top1_accuracy(test_y, logistic.predict(params, test_x))
    return accuracy, chosen.value


class IterationLog:
    """Records (rows, iterations) of every L-BFGS solve while active: the
    solver's own count, read from each Solution it returns; and the seconds
    spent building preconditioners (`build_seconds`)."""

    def __init__(self):
        self.solves = []
        self.build_seconds = 0.0
        self._solve = logistic.fit_logistic_regression
        self._build = logistic.Preconditioner.__init__

    def __enter__(self):
        def solve(x, y, *args, **kwargs):
            solution = self._solve(x, y, *args, **kwargs)
            self.solves.append((len(y), solution.iterations))
            return solution

        def build(rotation, x):
            start = time.perf_counter()
            self._build(rotation, x)
            self.build_seconds += time.perf_counter() - start

        logistic.fit_logistic_regression = solve
        logistic.Preconditioner.__init__ = build
        return self

    def __exit__(self, *exc):
        logistic.fit_logistic_regression = self._solve
        logistic.Preconditioner.__init__ = self._build


def gemm_pair_seconds(x, classes, repeats=5):
    """Returns the median seconds of the two [n, d] x [d, K] products of one
    L-BFGS iteration (logits of the direction, X^T times the residual) on
    float32 `x` as the solver holds it, on this machine now."""
    x = tf.constant(x)
    w = tf.random.normal([classes, x.shape[1]])
    r = tf.random.normal([x.shape[0], classes])
    pair = tf.function(
        lambda: (
            tf.reduce_sum(tf.matmul(x, w, transpose_b=True))
            + tf.reduce_sum(tf.matmul(r, x, transpose_a=True))
        )
    )
    pair().numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pair().numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor_seconds(solves, x, train_rows, classes):
    """Returns (floor seconds, iterations, GFLOP/s): each solve's iterations
    plus one (the start's logits and gradient) times the measured time of
    an iteration's two products at its row count; the rate is 4 n d K FLOPs
    per pair."""
    rates = {}
    for n in sorted({n for n, _ in solves}):
        rows = train_rows if n == len(train_rows) else np.arange(n)
        rates[n] = gemm_pair_seconds(x[rows], classes)
    floor = sum((iterations + 1) * rates[n] for n, iterations in solves)
    n = max(rates)
    gflops = 4 * n * x.shape[1] * classes / rates[n] / 1e9
    return floor, sum(i for _, i in solves), gflops


def load_features(spec):
    """Returns ((train x, y), (test x, y)) from "TRAIN.npz,TEST.npz"."""
    paths = spec.split(",")
    if len(paths) != 2:
        raise ValueError(f"give two files, TRAIN.npz,TEST.npz; got {spec!r}")
    out = []
    for path in paths:
        with np.load(path) as data:
            out.append((data["features"].astype(np.float32), data["labels"]))
    return out


def peak_rss_gb():
    """Returns the process's peak resident memory so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _feature_set(x, y):
    return FeatureSet(x, y, np.arange(len(y)).astype(str))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="training examples")
    parser.add_argument("--d", type=int, default=2_048, help="feature dimension")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--n_test", type=int, default=None, help="default n // 4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--num_l2",
        type=int,
        default=None,
        help="lambdas of the protocol (default: the evaluator's 45; the "
        "mini-zoo config uses 15)",
    )
    parser.add_argument(
        "--features",
        default=None,
        help="TRAIN.npz,TEST.npz: real features instead of synthetic ones, "
        "two files of a benchmark feature cache (arrays features, labels)",
    )
    parser.add_argument("--skip_baseline", action="store_true")
    parser.add_argument(
        "--compare_plain",
        action="store_true",
        help="also run ours without the preconditioner (the solver before it)",
    )
    parser.add_argument(
        "--baseline_every",
        type=int,
        default=1,
        help="scikit-learn sweeps every K-th lambda of the grid, from the "
        "largest (1: the whole protocol); ours is also timed on that subset",
    )
    parser.add_argument(
        "--baseline_first",
        type=int,
        default=None,
        help="scikit-learn sweeps only the first K lambdas of the grid (the "
        "largest, where the protocol's choice usually falls); ours is also "
        "timed on that subset",
    )
    args = parser.parse_args(argv)
    n_test = args.n_test or max(args.n // 4, args.classes)
    if args.features:
        try:
            (train_x, train_y), (test_x, test_y) = load_features(args.features)
        except (OSError, KeyError, ValueError) as e:
            parser.error(f"--features: {e}")
        args.n, args.d = train_x.shape
        args.classes = int(train_y.max()) + 1
    else:
        train_x, train_y = make_features(args.n, args.d, args.classes, args.seed)
        test_x, test_y = make_features(n_test, args.d, args.classes, args.seed)
    # Different n give different draws, but n_test == n would repeat train.
    if n_test == args.n and not args.features:
        test_x, test_y = make_features(n_test + 1, args.d, args.classes, args.seed)
    train, test = _feature_set(train_x, train_y), _feature_set(test_x, test_y)
    if args.num_l2 is not None and args.num_l2 < 1:
        parser.error(f"--num_l2 must be >= 1, got {args.num_l2}")
    evaluator = linear_probe.LinearProbe(
        **({} if args.num_l2 is None else {"num_l2": args.num_l2})
    )
    print(
        f"features: train {args.n} x {args.d}, test {len(test_y)}, "
        f"{args.classes} classes; {evaluator.num_l2} lambdas, "
        f"max_iter {evaluator.max_iter}, tol {evaluator.tol}"
    )

    start = time.perf_counter()
    tiny = np.arange(8) % 2
    logistic.fit_logistic_regression(np.eye(8, 3, dtype=np.float32), tiny, 1.0)
    trace = time.perf_counter() - start
    print(f"one-time tf.function trace: {trace:.1f} s (not included below)")

    print(f"peak memory after the features: {peak_rss_gb():.2f} GB")

    start = time.perf_counter()
    with IterationLog() as log:
        (ours,) = evaluator.evaluate(train, test)
    ours_time = time.perf_counter() - start
    print(
        f"ours    (TF L-BFGS, float32): {ours_time:8.1f} s  "
        f"test top-1 {100 * ours.value:.2f}%  lambda {ours.selected['l2']:.3g}  "
        f"peak memory {peak_rss_gb():.2f} GB"
    )
    split = evaluator.val_fraction, evaluator.val_seed
    tr, _ = metrics.stratified_split(train_y, *split)
    floor, iterations, gflops = floor_seconds(log.solves, train_x, tr, args.classes)
    floor += log.build_seconds
    print(
        f"floor: {iterations} iterations in {len(log.solves)} solves x 2 products "
        f"at {gflops:.1f} GFLOP/s (float32 GEMM, measured now), plus "
        f"{log.build_seconds:.1f} s building preconditioners: {floor:.1f} s; "
        f"ratio ours / floor {ours_time / floor:.2f} (goal <= 2)"
    )
    if args.compare_plain:
        start = time.perf_counter()
        with IterationLog() as plain_log, logistic.without_preconditioning():
            (plain,) = evaluator.evaluate(train, test)
        plain_time = time.perf_counter() - start
        plain_iterations = sum(i for _, i in plain_log.solves)
        print(
            f"ours without preconditioner: {plain_time:8.1f} s  "
            f"test top-1 {100 * plain.value:.2f}%  lambda {plain.selected['l2']:.3g}  "
            f"{plain_iterations} iterations; preconditioned is "
            f"{plain_time / ours_time:.2f}x faster"
        )
    if args.skip_baseline:
        return 0
    grid = evaluator.l2_grid()[: args.baseline_first][:: args.baseline_every]
    ours_value, ours_l2, ours_sub = ours.value, ours.selected["l2"], ours_time
    which = f"the whole {evaluator.num_l2}-lambda protocol"
    if len(grid) < evaluator.num_l2:
        which = (
            f"{len(grid)} lambdas, {grid[0]:.3g} to {grid[-1]:.3g} (every "
            f"{args.baseline_every} of the first {args.baseline_first or 'all'})"
        )
        start = time.perf_counter()
        ours_value, ours_l2 = ours_on_grid(
            train_x, train_y, test_x, test_y, evaluator, grid
        )
        ours_sub = time.perf_counter() - start
        print(
            f"ours on the baseline's sweep:  {ours_sub:8.1f} s  "
            f"test top-1 {100 * ours_value:.2f}%  lambda {ours_l2:.3g}"
        )
    start = time.perf_counter()
    base_value, base_l2 = sklearn_linear_probe(
        train_x, train_y, test_x, test_y, evaluator, grid
    )
    base_time = time.perf_counter() - start
    print(
        f"sklearn (lbfgs, float64):     {base_time:8.1f} s  "
        f"test top-1 {100 * base_value:.2f}%  lambda {base_l2:.3g}  "
        f"peak memory {peak_rss_gb():.2f} GB"
    )
    gap = 100 * abs(ours_value - base_value)
    print(f"baseline sweep: {which}")
    print(f"speed-up baseline / ours: {base_time / ours_sub:.1f}x (goal >= 20)")
    print(f"test accuracy gap: {gap:.2f} points ({'OK' if gap <= 0.3 else 'FAIL'})")
    return 0 if gap <= 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
