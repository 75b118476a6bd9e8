"""L2-regularised multinomial logistic regression: the one solver and the one
lambda sweep of every frozen-feature protocol that fits a linear classifier
(the linear probe, Chexpert's per-pathology classifiers).

Objective: sum_i CE_i + (lambda / 2) ||W||_F^2 over the softmax of
x_i W^T + b (the bias is not penalised), with K rows in W for K classes, two
rows for a binary task, as in the paper's softmax objective. For two classes
the optimum splits the difference symmetrically, W = [-w/2; w/2], so the
penalty is (lambda / 4) ||w||^2 of the equivalent single-vector (sigmoid)
model: lambda here corresponds to scikit-learn's C = 2 / lambda on binary
tasks and to C = 1 / lambda on multi-class ones (docs/protocols.md).

Lambda sweep (`select_l2`): candidates from the largest to the smallest, each
fit warm-started from the previous solution; the best validation score wins,
ties keep the larger lambda, and the number of tied candidates and their range
are returned so a saturated validation split is visible in the results.

Solver (`fit_logistic_regression`): L-BFGS written in TensorFlow, the whole
minimisation one tf.function (a tf.while_loop: no Python per iteration, traced
once per process for any shapes), so it runs on CPU or GPU. Each iteration
costs two [n, d] x [d, K] matrix products and nothing else of that size:

  * the direction comes from the compact L-BFGS representation (Byrd, Nocedal
    & Schnabel 1994) with the last 10 correction pairs (scipy's default);
  * the line search (strong Wolfe, c1 = 1e-4, c2 = 0.9; expansion, then
    cubic interpolation in the bracket) evaluates the objective along the
    direction from the logits z + alpha X d, so a trial step costs O(n K), not
    a matrix product; objective changes are computed without cancellation
    (log1p / expm1), which keeps float32 exact enough to decide sufficient
    decrease near the optimum;
  * the problem is solved in the exactly equivalent parametrisation with
    centred features, logits = (x - mean) W^T + b', b' = b + W mean. The
    penalty only involves W, so the objective and its minimiser are unchanged
    (b is recovered exactly), but the curvature no longer couples the bias to
    every weight through the large positive means of ReLU features: several
    times fewer iterations than the uncentred problem (perf/linear_probe.py);
  * preconditioning (`Preconditioner`, on by default where it pays): the
    features are rotated once per matrix onto the eigenvectors U of their
    covariance S = U diag(e) U^T, and each weight is scaled by
    s_j = (e_j / K + lambda / n)^(-1/2), i.e. W = (V * s) U^T is solved for
    in V. (e_j / K + lambda / n) is the curvature of the mean objective along
    eigenvector j at the start (softmax's curvature is about 1/K there), so
    the scaled problem is close to isotropic and L-BFGS needs several times
    fewer iterations on ill-conditioned features: on a mini-zoo module's
    CIFAR-10 features (512-d, 21% non-zero, some never active), the
    15-lambda sweep took 1,536 iterations instead of 7,354 at n = 10,000 and
    4,475 instead of 8,007 at n = 40,000 (the plain solver hit max_iter on 7
    lambdas), reaching equal or lower objectives. On perf/linear_probe.py's
    synthetic features, which are well conditioned, it took about 1.4x more
    iterations, so it is used only when the covariance's spread (largest
    eigenvalue over its 10th percentile) is at least 100: about 19 there,
    about 28,000 on the mini-zoo features (perf/linear_probe.py
    --compare_plain shows both solvers). The floor (lambda / n, at least
    1e-3 of the largest curvature) keeps the scaled problem within
    float32's reach. It is an exact change of variables: the objective, its
    minimiser and the convergence test (on the original W's gradient) are
    unchanged. Its cost is one covariance, one eigendecomposition and one
    rotation of X per matrix (2 n d^2 + O(d^3); the rotation only when
    used), shared by every lambda of a sweep; each iteration adds a [K, d] x
    [d, d] product for the convergence test.

Arithmetic is float32 (features are stored as float32; float32 products cost
under half of float64 ones on CPU): objectives at the solutions match a
float64 scipy L-BFGS-B minimisation to a relative 1e-8 or better, and the
selected lambda and test accuracy match scikit-learn's float64 sweep
(tests/test_evaluators.py, perf/linear_probe.py). Convergence: max |gradient|
of the per-example-mean objective (mean_i CE_i + lambda / (2 n) ||W||^2, the
scale of sklearn's `tol`) <= `tol`, or a relative objective decrease below
1e-10 (the float32 precision floor), or `max_iter` iterations. XLA
(`jit_compile=True`) is optional: it fuses the O(n K) work but compiles for
seconds per input shape, which did not pay off on 2 CPU cores.
"""

import contextlib
import functools
import typing

import numpy as np
import tensorflow as tf
from scipy import special


def l2_grid(num, low, high):
    """Returns `num` log-spaced lambdas in [low, high], largest first (the
    sweep order)."""
    if num < 1 or not 0 < low <= high:
        raise ValueError(
            f"the lambda grid needs num >= 1 and 0 < min <= max, got {num}, "
            f"{low}, {high}"
        )
    return np.logspace(np.log10(low), np.log10(high), int(num))[::-1]


class Selection(typing.NamedTuple):
    """The outcome of a hyperparameter sweep on validation data.

    Attributes:
      value: the chosen candidate (lambda).
      score: its validation score.
      params: the solution fitted at it (W, b).
      ties: how many candidates reached that score (1: no tie).
      tied_range: [smallest, largest] tied candidate.
    """

    value: float
    score: float
    params: tuple
    ties: int
    tied_range: list

    def selected(self, name, score_name):
        """Returns the `selected` dict recorded in a leaderboard row."""
        return {
            name: float(self.value),
            score_name: float(self.score),
            "ties": int(self.ties),
            f"tied_{name}_range": [float(v) for v in self.tied_range],
        }


def select_l2(
    x, y, val_x, val_y, grid, score, *, max_iter=1000, tol=1e-6, warm_start=True
):
    """Returns the Selection of the best lambda in `grid` on validation.

    Fits sum_i CE_i + (l2 / 2) ||W||^2 on (x, y) for each lambda in the order
    of `grid` (largest first), each warm-started from the previous solution
    (cold-started from zeros with warm_start=False), and scores it with
    `score(params, val_x, val_y)` (higher is better). Ties keep the earlier,
    i.e. larger, lambda: the more regularised model is preferred when
    validation cannot tell them apart.
    """
    x = x if tf.is_tensor(x) else tf.constant(np.asarray(x, np.float32))
    rotation = Preconditioner.where_it_pays(x, int(np.max(y)) + 1)
    scores, best, params = [], None, None
    for l2 in grid:
        init = params if warm_start else None
        params = fit(x, y, l2, init, max_iter=max_iter, tol=tol, rotation=rotation)
        value = float(score(params, val_x, val_y))
        scores.append((float(l2), value))
        if best is None or value > best[1]:
            best = (float(l2), value, params)
    tied = [l2 for l2, value in scores if value == best[1]]
    return Selection(*best, len(tied), [min(tied), max(tied)])


def select_and_refit(x, y, train_idx, val_idx, grid, score, *, max_iter, tol):
    """Returns (params refit on all of (x, y), Selection on validation).

    The protocol of every fitted linear classifier here: `select_l2` on
    (x[train_idx], y[train_idx]) scored on the validation rows, then a refit
    on every row at the chosen lambda, warm-started from its solution (the
    objective is convex, so that saves iterations and changes no optimum).
    Features go to the device once per matrix, not once per lambda.
    """
    x = np.asarray(x, dtype=np.float32)
    chosen = select_l2(
        tf.constant(x[train_idx]),
        y[train_idx],
        x[val_idx],
        y[val_idx],
        grid,
        score,
        max_iter=max_iter,
        tol=tol,
    )
    x = tf.constant(x)
    params = fit(
        x,
        y,
        chosen.value,
        chosen.params,
        max_iter=max_iter,
        tol=tol,
        rotation=Preconditioner.where_it_pays(x, int(np.max(y)) + 1),
    )
    return params, chosen


def fit(x, y, l2, init=None, *, max_iter=1000, tol=1e-6, rotation=None):
    """Returns (W [K, d], b [K]) minimising sum_i CE_i + (l2 / 2) ||W||_F^2.

    y holds class indices 0..K-1, all present; `init` is a previous (W, b) or
    None (start from zeros); `rotation` a Preconditioner of x, or None. See
    `fit_logistic_regression`.
    """
    solution = fit_logistic_regression(
        x, y, l2, init, max_iter=max_iter, tol=tol, rotation=rotation
    )
    return solution.weights, solution.bias


_PRECONDITION = [True]


@contextlib.contextmanager
def without_preconditioning():
    """Within it, sweeps and refits solve the plain problem: the baseline
    that perf scripts and tests compare the preconditioned solver with."""
    _PRECONDITION[0] = False
    try:
        yield
    finally:
        _PRECONDITION[0] = True


class Preconditioner:
    """The features rotated onto the eigenvectors of their covariance, which
    `fit_logistic_regression` solves in with each weight scaled by
    (e_j / K + lambda / n)^(-1/2) (module docstring). Built once per feature
    matrix and shared by every lambda fitted on it.

    Attributes:
      rotated: [n, d] (x - mean) U, float32 tensor.
      basis: U [d, d] float64, columns the eigenvectors.
      eigenvalues: e [d] float64, of the covariance (x - mean)^T (x - mean) / n.
      mean: [d] float64 feature mean.
    """

    # Use it when its one-off cost is below this many iterations' products.
    PAYS_WITHIN_ITERATIONS = 100
    # Well-conditioned features (perf/linear_probe.py's synthetic ones have a
    # spread of about 19) converge as fast without it; penultimate features
    # of trained networks, with rarely active units, have spreads of 1e4+.
    MIN_SPREAD = 100.0
    FLOOR = 1e-4

    def __init__(self, x):
        x = x if tf.is_tensor(x) else tf.constant(np.asarray(x, np.float32))
        mean = tf.reduce_mean(x, axis=0)
        centred = x - mean
        n = int(x.shape[0])
        covariance = tf.matmul(centred, centred, transpose_a=True).numpy() / n
        eigenvalues, basis = np.linalg.eigh(covariance.astype(np.float64))
        self.eigenvalues = np.maximum(eigenvalues, 0.0)
        self.basis = basis
        self.mean = mean.numpy().astype(np.float64)
        self._x = x
        self._rotated = None

    @property
    def rotated(self):
        """(x - mean) U, computed on first use (a sweep that skips the
        preconditioner never pays for it)."""
        if self._rotated is None:
            mean = tf.constant(self.mean, self._x.dtype)
            self._rotated = tf.matmul(
                self._x - mean, tf.constant(self.basis, self._x.dtype)
            )
            self._x = None
        return self._rotated

    def spread(self):
        """Returns the covariance's largest eigenvalue over its 10th
        percentile: how ill-conditioned the features are."""
        low = np.percentile(self.eigenvalues, 10)
        return float(self.eigenvalues.max() / max(low, 1e-30))

    @classmethod
    def where_it_pays(cls, x, num_classes):
        """Returns a Preconditioner of x when building it costs fewer FLOPs
        than PAYS_WITHIN_ITERATIONS L-BFGS iterations (each two [n, d] x
        [d, K] products) and the features are ill-conditioned (spread() at
        least MIN_SPREAD); else None (and always None inside
        `without_preconditioning()`)."""
        if not _PRECONDITION[0]:
            return None
        n, d = (int(v) for v in x.shape)
        build = 4.0 * n * d * d + 10.0 * d**3  # covariance, rotation, eigh
        iteration = 4.0 * n * d * num_classes
        if build >= cls.PAYS_WITHIN_ITERATIONS * iteration:
            return None
        rotation = cls(x)
        return rotation if rotation.spread() >= cls.MIN_SPREAD else None

    def scale(self, l2, num_classes):
        """Returns s [d]: (e_j / K + lambda / n)^(-1/2), relative to its max."""
        n = int(self.rotated.shape[0])
        curvature = self.eigenvalues / num_classes
        floor = max(l2 / n, self.FLOOR * curvature.max())
        scale = 1.0 / np.sqrt(curvature + floor)
        return scale / scale.max()


def decision_scores(params, x):
    """Returns x W^T + b [N, K] for params (W [K, d], b [K])."""
    w, b = params
    return np.asarray(x) @ w.T + b


def predict(params, x):
    """Returns argmax_k (x W^T + b)_k, class indices, for params (W [K, d], b [K])."""
    return np.argmax(decision_scores(params, x), axis=1)


def positive_probability(params, x):
    """Returns the softmax probability of class 1 of a binary fit:
    sigmoid(z_1 - z_0), the score a binary classifier's AUC ranks."""
    z = decision_scores(params, x)
    return special.expit(z[:, 1] - z[:, 0])  # no overflow for large margins


class Solution(typing.NamedTuple):
    """A minimiser of the linear probe's objective and how it was reached.

    Attributes:
      weights: [K, d] float64 W.
      bias: [K] float64 b.
      objective: sum_i CE_i + (l2 / 2) ||W||^2 at (W, b).
      grad_max: max |gradient| of the mean objective (objective / n).
      iterations: L-BFGS iterations taken.
      status: "converged" (grad_max <= tol), "no_progress" (relative decrease
        below 1e-10, or no step decreases the objective: the precision floor),
        or "max_iter".
    """

    weights: np.ndarray
    bias: np.ndarray
    objective: float
    grad_max: float
    iterations: int
    status: str


def fit_logistic_regression(
    x,
    y,
    l2,
    init=None,
    *,
    max_iter=1000,
    tol=1e-6,
    dtype=tf.float32,
    jit_compile=False,
    rotation=None,
):
    """Returns the `Solution` minimising sum_i CE_i + (l2 / 2) ||W||_F^2 by L-BFGS.

    CE_i is the softmax cross-entropy of logits x_i W^T + b for label y_i;
    the bias b is not penalised (for two classes W has two rows, as in the
    paper's softmax objective; the optimum is their symmetric split).

    Args:
      x: [n, d] features (array or tensor; a tensor of `dtype` is not copied).
      y: [n] class indices 0..K-1.
      l2: lambda > 0 (on the sum of per-example losses).
      init: (W [K, d], b [K]) to start from (warm start), or None for zeros,
        in which case K = max(y) + 1.
      max_iter: iteration budget.
      tol: tolerance on max |gradient| of the mean objective.
      dtype: arithmetic (tf.float32 or tf.float64).
      jit_compile: compile with XLA. Costs seconds per new input shape; on
        2 CPU cores it only paid off for repeated solves of one shape.
      rotation: a Preconditioner of x to solve in (module docstring), or
        None for the plain problem.
    """
    dtype = tf.as_dtype(dtype)
    y = np.asarray(y)
    dim = int(x.shape[1])
    if init is None:
        init = np.zeros([int(y.max()) + 1, dim]), np.zeros(int(y.max()) + 1)
    w, b = np.asarray(init[0], np.float64), np.asarray(init[1], np.float64)
    num_classes = w.shape[0]
    rotated = ()
    if rotation is None:
        scale = np.ones(dim)
    else:  # W = (V * s) U^T and b = b_Y - W mean, from the rotated problem
        x = rotation.rotated
        scale, basis, shift = (
            rotation.scale(l2, num_classes),
            rotation.basis,
            rotation.mean,
        )
        b = b + w @ shift
        w = (w @ basis) / scale
        rotated = (tf.constant(basis, dtype), tf.constant(shift, dtype))
    x = tf.cast(x, dtype) if tf.is_tensor(x) else tf.constant(x, dtype)
    theta = np.concatenate([w, b[:, None]], axis=1)
    out = _compiled_minimise(dtype, jit_compile, bool(rotated))(
        x,
        tf.constant(y, tf.int32),
        tf.constant(theta, dtype),
        tf.constant(l2, dtype),
        tf.constant(max_iter, tf.int32),
        tf.constant(tol, dtype),
        tf.constant(scale, dtype),
        *rotated,
    )
    theta, objective, grad_max, iterations, status = (v.numpy() for v in out)
    theta = theta.astype(np.float64)
    w, b = theta[:, :-1], theta[:, -1]
    if rotation is not None:
        w = w @ basis.T
        b = b - w @ shift
    return Solution(
        weights=w,
        bias=b,
        objective=float(objective) * len(y),
        grad_max=float(grad_max),
        iterations=int(iterations),
        status=_STATUS[int(status)],
    )


_MEMORY = 10  # L-BFGS correction pairs.
_MAX_TRIALS = 20  # Step lengths tried per line search.
_C1, _C2 = 1e-4, 0.9  # Strong Wolfe: sufficient decrease, curvature.
_FTOL = 1e-10  # Relative objective decrease that counts as no progress.
_RUNNING, _CONVERGED, _NO_PROGRESS, _MAX_ITER = 0, 1, 2, 3
_STATUS = {_CONVERGED: "converged", _NO_PROGRESS: "no_progress", _MAX_ITER: "max_iter"}


class _Problem(typing.NamedTuple):
    """The data of one minimisation, in the centred parametrisation."""

    x: tf.Tensor  # [n, d] features.
    onehot: tf.Tensor  # [n, K] labels.
    mean: tf.Tensor  # [d] feature mean.
    c: tf.Tensor  # lambda / n: the penalty of the mean objective.
    mask: tf.Tensor  # [1, d + 1] s^2 on the weights, 0 on the bias (penalty).
    scale: tf.Tensor  # [d] s: the solved-for V holds W / s (1 unpreconditioned).
    basis: tf.Tensor | None  # [d, d] U of a Preconditioner, None for none.
    shift: tf.Tensor | None  # [d] the mean the rotated features were centred by.


class _State(typing.NamedTuple):
    """L-BFGS loop variables; theta = [W | b'] is [K, d + 1]."""

    step: tf.Tensor
    theta: tf.Tensor
    logits: tf.Tensor  # [n, K]
    probs: tf.Tensor  # [n, K] softmax(logits).
    value: tf.Tensor  # Mean objective.
    grad: tf.Tensor  # [K, d + 1]
    s_mem: tf.Tensor  # [m, P] parameter steps, oldest first (P = K (d + 1)).
    y_mem: tf.Tensor  # [m, P] gradient changes.
    used: tf.Tensor  # [m] 1 where a pair is stored.
    gamma: tf.Tensor  # Scale of the initial inverse Hessian.
    status: tf.Tensor


def _logits(problem, theta):
    """Returns (x - mean) (V * s)^T + b' [n, K], for theta = [V | b']."""
    w, b = theta[:, :-1] * problem.scale, theta[:, -1]
    return tf.matmul(problem.x, w, transpose_b=True) + (
        b - tf.linalg.matvec(w, problem.mean)
    )


def _gradient(problem, theta, probs):
    """Returns the gradient [K, d + 1] of the mean objective in theta."""
    n = tf.cast(tf.shape(problem.x)[0], probs.dtype)
    residual = (probs - problem.onehot) / n
    grad_b = tf.reduce_sum(residual, axis=0)
    grad_w = tf.matmul(residual, problem.x, transpose_a=True)
    grad_w = (grad_w - grad_b[:, None] * problem.mean) * problem.scale
    return tf.concat([grad_w, grad_b[:, None]], 1) + problem.c * problem.mask * theta


def _mean_loss(problem, logits):
    """Returns mean_i CE_i for [n, K] logits."""
    label_logit = tf.reduce_sum(logits * problem.onehot, axis=1)
    return tf.reduce_mean(tf.reduce_logsumexp(logits, axis=1) - label_logit)


def _direction(grad, state):
    """Returns -H grad, H the compact L-BFGS inverse Hessian of the stored pairs.

    H = gamma I + [S, gamma Y] [[R^-T (D + gamma Y'Y) R^-1, -R^-T], [-R^-1, 0]]
    [S'; gamma Y'] (Byrd, Nocedal & Schnabel 1994, eq. 3.1), R the upper
    triangle of S'Y and D its diagonal. Unused slots hold zero pairs and get a
    unit diagonal in R, which makes their coefficients zero.
    """
    s_mem, y_mem, gamma = state.s_mem, state.y_mem, state.gamma
    sy = tf.matmul(s_mem, y_mem, transpose_b=True)
    yy = tf.matmul(y_mem, y_mem, transpose_b=True)
    unused = 1.0 - state.used
    upper = tf.linalg.band_part(sy, 0, -1) + tf.linalg.diag(unused)
    s_grad = tf.linalg.matvec(s_mem, grad)
    y_grad = tf.linalg.matvec(y_mem, grad)
    t = tf.linalg.triangular_solve(upper, s_grad[:, None], lower=False)
    middle = (tf.linalg.diag_part(sy) + unused)[:, None] * t
    middle += gamma * tf.matmul(yy, t) - gamma * y_grad[:, None]
    u = tf.linalg.triangular_solve(upper, middle, lower=False, adjoint=True)
    h_grad = (
        gamma * grad
        + tf.linalg.matvec(s_mem, u[:, 0], transpose_a=True)
        - gamma * tf.linalg.matvec(y_mem, t[:, 0], transpose_a=True)
    )
    return -h_grad


def _near_shift(probs, shift):
    """Returns per-row lse(z + a) - lse(z) = log sum_k p_k e^{a_k} and
    softmax(z + a), for p = softmax(z), through log1p / expm1 so that tiny
    changes do not cancel. The probabilities are normalised by their own
    sum, not by 1 + the change: carried from step to step, rows whose sum
    drifted from 1 (float32 on saturated rows) would otherwise drift further
    each step, up to NaN."""
    grow = tf.math.expm1(shift)
    total = tf.reduce_sum(probs * grow, axis=1)
    scaled = probs * (grow + 1.0)
    return tf.math.log1p(total), scaled / tf.reduce_sum(scaled, axis=1)[:, None]


def _line_search(problem, logits, probs, logits_step, slope0, wd, dd):
    """Returns (alpha, objective change, probs at alpha, found) along a direction.

    phi(alpha) = mean objective at theta + alpha d, evaluated from
    logits + alpha X d (logits_step) in O(n K). slope0 = phi'(0) < 0,
    wd = <W, d_W> and dd = ||d_W||^2 give the penalty's change. Accepts the
    first step satisfying the strong Wolfe conditions; else the longest step
    with sufficient decrease found (found is False if there is none).
    """
    dtype = logits.dtype
    step_label = tf.reduce_sum(logits_step * problem.onehot, axis=1)

    def near(shift):
        return _near_shift(probs, shift)

    def far(shift):
        """As `near`, through logsumexp: exact enough when changes are large."""
        shifted = logits + shift
        lse = tf.reduce_logsumexp(shifted, axis=1)
        base = tf.reduce_logsumexp(logits, axis=1)
        return lse - base, tf.exp(shifted - lse[:, None])

    def phi(alpha):
        """Returns (phi(alpha) - phi(0), phi'(alpha), probs at alpha)."""
        shift = alpha * logits_step
        row_change, new_probs = tf.cond(
            tf.reduce_max(tf.abs(shift)) < 1.0,
            lambda: near(shift),
            lambda: far(shift),
        )
        change = tf.reduce_mean(row_change - alpha * step_label)
        change += problem.c * (alpha * wd + 0.5 * alpha * alpha * dd)
        slope = tf.reduce_mean(
            tf.reduce_sum(new_probs * logits_step, axis=1) - step_label
        )
        return change, slope + problem.c * (wd + alpha * dd), new_probs

    def body(i, alpha, lo, f_lo, g_lo, p_lo, hi, f_hi, g_hi, done):
        f, g, p = phi(alpha)
        too_long = tf.logical_or(f > _C1 * alpha * slope0, f >= f_lo)
        done = tf.logical_and(~too_long, tf.abs(g) <= -_C2 * slope0)
        to_hi = tf.logical_or(too_long, tf.logical_and(~done, g > 0))
        lo, f_lo, g_lo, p_lo = (
            tf.where(to_hi, old, new)
            for old, new in ((lo, alpha), (f_lo, f), (g_lo, g), (p_lo, p))
        )
        hi, f_hi, g_hi = (
            tf.where(to_hi, new, old)
            for old, new in ((hi, alpha), (f_hi, f), (g_hi, g))
        )
        # Next trial: expand until bracketed, then the minimiser of the cubic
        # interpolating (f, g) at both ends (Nocedal & Wright eq. 3.59), kept
        # 10% inside the bracket; bisection when the cubic is not usable.
        width = hi - lo
        d1 = g_lo + g_hi - 3.0 * (f_lo - f_hi) / (lo - hi)
        disc = d1 * d1 - g_lo * g_hi
        d2 = tf.sqrt(tf.maximum(disc, 0.0))
        cubic = hi - width * (g_hi + d2 - d1) / (g_hi - g_lo + 2.0 * d2)
        usable = tf.logical_and(disc >= 0.0, tf.math.is_finite(cubic))
        cubic = tf.where(usable, cubic, lo + 0.5 * width)
        cubic = tf.clip_by_value(cubic, lo + 0.1 * width, hi - 0.1 * width)
        alpha = tf.where(tf.math.is_inf(hi), 4.0 * alpha, cubic)
        return i + 1, alpha, lo, f_lo, g_lo, p_lo, hi, f_hi, g_hi, done

    zero, inf = tf.zeros([], dtype), tf.constant(np.inf, dtype)
    init = (0, tf.ones([], dtype), zero, zero, slope0, probs, inf, inf, zero, False)
    out = tf.while_loop(lambda i, *v: (i < _MAX_TRIALS) & ~v[-1], body, init)
    _, _, lo, f_lo, _, p_lo = out[:6]
    return lo, f_lo, p_lo, lo > 0.0


def _iterate(problem, state, max_iter, tol):
    """Returns the `_State` after one L-BFGS iteration."""
    shape = tf.shape(state.theta)
    grad = tf.reshape(state.grad, [-1])
    direction = _direction(grad, state)
    slope0 = tf.reduce_sum(grad * direction)
    # Steepest descent if the pairs gave no descent direction (rounding).
    fallback = tf.logical_not(slope0 < 0.0)
    direction = tf.where(fallback, -state.gamma * grad, direction)
    slope0 = tf.where(fallback, -state.gamma * tf.reduce_sum(grad * grad), slope0)
    direction = tf.reshape(direction, shape)
    logits_step = _logits(problem, direction)
    wd = tf.reduce_sum(problem.mask * state.theta * direction)
    dd = tf.reduce_sum(problem.mask * direction * direction)
    alpha, change, probs, found = _line_search(
        problem, state.logits, state.probs, logits_step, slope0, wd, dd
    )
    theta = state.theta + alpha * direction
    new_grad = _gradient(problem, theta, probs)
    # A step whose probabilities or gradient are not finite (float32 at
    # saturated probabilities, on separable data at tiny lambda) is not
    # taken: the solver goes on from the last finite point, or stops there.
    found = tf.logical_and(
        found,
        tf.logical_and(
            tf.math.is_finite(change),
            tf.reduce_all(tf.math.is_finite(new_grad)),
        ),
    )
    s = tf.reshape(alpha * direction, [-1])
    y = tf.reshape(new_grad, [-1]) - grad
    sy, yy = tf.reduce_sum(s * y), tf.reduce_sum(y * y)
    keep = tf.logical_and(found, sy > np.finfo(s.dtype.as_numpy_dtype).eps * yy)

    def push(memory, row):
        return tf.where(keep, tf.concat([memory[1:], row[None]], 0), memory)

    step = state.step + 1
    value = state.value + change
    grad_max = _original_grad_max(problem, new_grad)
    stalled = -change <= _FTOL * tf.maximum(tf.abs(value), 1.0)
    status = tf.where(
        grad_max <= tol,
        _CONVERGED,
        tf.where(stalled, _NO_PROGRESS, tf.where(step >= max_iter, _MAX_ITER, 0)),
    )
    moved = _State(
        step=step,
        theta=theta,
        logits=state.logits + alpha * logits_step,
        probs=probs,
        value=value,
        grad=new_grad,
        s_mem=push(state.s_mem, s),
        y_mem=push(state.y_mem, y),
        used=push(state.used, tf.ones([], s.dtype)),
        gamma=tf.where(keep, sy / yy, state.gamma),
        status=status,
    )
    # No step decreased the objective: drop the pairs and retry with steepest
    # descent; if that was already steepest descent, stop.
    empty = tf.reduce_sum(state.used) == 0.0
    stuck = state._replace(
        step=step,
        used=tf.zeros_like(state.used),
        status=tf.where(empty, _NO_PROGRESS, tf.where(step >= max_iter, _MAX_ITER, 0)),
    )
    return tf.nest.map_structure(lambda a, b: tf.where(found, a, b), moved, stuck)


def _original_grad_max(problem, grad):
    """Returns max |gradient| in the original (W, b) parametrisation.

    With b' = b + W mean: dF/dW = dF'/dW + dF'/db' mean^T and dF/db = dF'/db';
    with V = W / s: dF/dW = (dF/dV) / s; preconditioned, W's gradient is that
    of the rotated W times U^T, plus dF/db times the mean removed before the
    rotation.
    """
    grad_w = grad[:, :-1] / problem.scale + grad[:, -1:] * problem.mean
    if problem.basis is not None:
        grad_w = tf.matmul(grad_w, problem.basis, transpose_b=True)
        grad_w += grad[:, -1:] * problem.shift
    return tf.maximum(tf.reduce_max(tf.abs(grad_w)), tf.reduce_max(tf.abs(grad[:, -1])))


@functools.lru_cache(maxsize=None)
def _compiled_minimise(dtype, jit_compile, rotated=False):
    """Returns `_minimise` as a tf.function traced once for any shapes
    (`rotated`: the preconditioned problem, which takes basis and shift).

    Its loops and branches are written as tf.while_loop and tf.cond already,
    so AutoGraph is off: converting the solver's source cost about 4 s of
    CPU per process and changed no op.
    """
    matrix, vector = tf.TensorSpec([None, None], dtype), tf.TensorSpec([], dtype)
    signature = (
        matrix,  # x
        tf.TensorSpec([None], tf.int32),  # labels
        matrix,  # theta
        vector,  # l2
        tf.TensorSpec([], tf.int32),  # max_iter
        vector,  # tol
        tf.TensorSpec([None], dtype),  # scale
    )
    if rotated:
        signature += (matrix, tf.TensorSpec([None], dtype))  # basis, shift
    return tf.function(
        _minimise,
        input_signature=signature,
        jit_compile=jit_compile,
        autograph=False,
    )


def _minimise(x, labels, theta, l2, max_iter, tol, scale, basis=None, shift=None):
    """Returns (theta [K, d + 1], mean objective, grad max, iterations,
    status); theta = [V | b] in and out, the weights W = V * s (rotated by
    basis^T when preconditioned)."""
    dtype = x.dtype
    num_classes = tf.shape(theta)[0]
    mean = tf.reduce_mean(x, axis=0)
    problem = _Problem(
        x=x,
        onehot=tf.one_hot(labels, num_classes, dtype=dtype),
        mean=mean,
        c=l2 / tf.cast(tf.shape(x)[0], dtype),
        mask=tf.concat([(scale * scale)[None], tf.zeros([1, 1], dtype)], 1),
        scale=scale,
        basis=basis,
        shift=shift,
    )
    v, b = theta[:, :-1], theta[:, -1]
    theta = tf.concat([v, (b + tf.linalg.matvec(v * scale, mean))[:, None]], 1)
    logits = _logits(problem, theta)
    probs = tf.nn.softmax(logits)
    grad = _gradient(problem, theta, probs)
    grad_max = _original_grad_max(problem, grad)
    size = tf.size(theta)
    state = _State(
        step=tf.zeros([], tf.int32),
        theta=theta,
        logits=logits,
        probs=probs,
        value=_mean_loss(problem, logits)
        + 0.5 * problem.c * tf.reduce_sum(problem.mask * theta * theta),
        grad=grad,
        s_mem=tf.zeros([_MEMORY, size], dtype),
        y_mem=tf.zeros([_MEMORY, size], dtype),
        used=tf.zeros([_MEMORY], dtype),
        # The first step is steepest descent of length at most 1.
        gamma=tf.minimum(tf.ones([], dtype), 1.0 / tf.norm(grad)),
        status=tf.where(
            grad_max <= tol, _CONVERGED, tf.where(max_iter <= 0, _MAX_ITER, 0)
        ),
    )
    (state,) = tf.while_loop(
        lambda s: s.status == _RUNNING,
        lambda s: (_iterate(problem, s, max_iter, tol),),
        (state,),
    )
    v, b = state.theta[:, :-1], state.theta[:, -1]
    w = v * scale
    theta = tf.concat([w, (b - tf.linalg.matvec(w, mean))[:, None]], 1)
    # Recomputed rather than state.value, which accumulates line-search changes.
    value = _mean_loss(problem, _logits(problem, state.theta))
    value += 0.5 * problem.c * tf.reduce_sum(w * w)
    return (
        theta,
        value,
        _original_grad_max(problem, state.grad),
        state.step,
        state.status,
    )
