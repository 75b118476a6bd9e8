"""Linear probe: L2-regularised multinomial logistic regression on frozen features.

Protocol of Kornblith et al. (2021), following Kornblith et al. (2019): the
objective is sum_i CE_i + (lambda / 2) ||W||_F^2 (the bias is not penalised),
lambda is chosen from `num_l2` log-spaced values in [l2_min, l2_max] on a fixed
stratified validation split of the training set, sweeping from the largest to
the smallest lambda and warm-starting each fit from the previous solution; the
model is then refit on train + validation and scored on test. Raw features
(no standardisation), float64 arithmetic.

The solver is isolated in `_fit` so that a TensorFlow L-BFGS can replace it.
"""

import functools
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from benchmark import metrics
from benchmark.evaluators.base import EVALUATORS, Evaluator, Measurement


@EVALUATORS.register("linear_probe")
class LinearProbe(Evaluator):
    """Linear probe with lambda chosen on validation.

    Args:
      num_l2: number of candidate regularisation strengths.
      l2_min: smallest lambda.
      l2_max: largest lambda.
      val_fraction: fraction of each training class held out for selection.
      val_seed: seed of the fixed validation split.
      max_iter: L-BFGS iteration budget per fit.
      tol: L-BFGS gradient tolerance (sklearn's `tol`, on the mean-loss scale).
    """

    name = "linear_probe"

    def __init__(
        self,
        *,
        num_l2=45,
        l2_min=1e-6,
        l2_max=1e5,
        val_fraction=0.2,
        val_seed=0,
        max_iter=1000,
        tol=1e-6,
    ):
        self.num_l2 = num_l2
        self.l2_min = l2_min
        self.l2_max = l2_max
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.max_iter = max_iter
        self.tol = tol

    def l2_grid(self):
        """Returns the candidate lambdas, largest first (the sweep order)."""
        grid = np.logspace(np.log10(self.l2_min), np.log10(self.l2_max), self.num_l2)
        return grid[::-1]

    def run(self, train, test, metric="top1"):
        """Yields Measurement("accuracy", test score, {"l2", "val_accuracy"})."""
        score = metrics.get_metric(metric)
        classes = np.unique(train.labels)
        if len(classes) < 2:
            raise ValueError("linear_probe needs at least 2 classes in train")
        x = np.asarray(train.features, dtype=np.float64)
        y = np.searchsorted(classes, train.labels)
        tr, val = metrics.stratified_split(y, self.val_fraction, self.val_seed)
        fit = functools.partial(_fit, max_iter=self.max_iter, tol=self.tol)
        l2, val_score, params = select_l2(
            fit, x[tr], y[tr], x[val], y[val], self.l2_grid(), score
        )
        # The objective is convex, so warm-starting the refit from the selected
        # solution only saves iterations; it does not change the optimum.
        params = fit(x, y, l2, params)
        test_x = np.asarray(test.features, dtype=np.float64)
        predictions = classes[predict(params, test_x)]
        yield Measurement(
            "accuracy",
            score(test.labels, predictions),
            selected={"l2": float(l2), "val_accuracy": val_score},
        )


def select_l2(fit, x, y, val_x, val_y, grid, score):
    """Returns (lambda, validation score, params) of the best lambda in `grid`.

    Fits in the order of `grid` (largest lambda first), each warm-started from
    the previous solution. Ties keep the earlier, i.e. larger, lambda: the
    more regularised model is preferred when validation cannot tell them apart.
    """
    best = (None, -np.inf, None)
    params = None
    for l2 in grid:
        params = fit(x, y, l2, params)
        value = score(val_y, predict(params, val_x))
        if value > best[1]:
            best = (float(l2), value, params)
    return best


def predict(params, x):
    """Returns argmax_k (x W^T + b)_k, class indices, for params (W [K, d], b [K])."""
    w, b = params
    return np.argmax(x @ w.T + b, axis=1)


def _fit(x, y, l2, init, *, max_iter, tol):
    """Returns (W [K, d], b [K]) minimising sum_i CE_i + (l2 / 2) ||W||_F^2.

    Solved with sklearn's lbfgs LogisticRegression, whose objective is
    C sum_i loss_i + 0.5 ||w||^2 with the intercept unpenalised (sklearn 1.9:
    LinearModelLoss.l2_penalty acts on the weights only); hence C = 1 / l2.
    With two classes sklearn fits one logit difference d = W_1 - W_0; the
    softmax penalty minimised over W with fixed d is (l2 / 4) ||d||^2, hence
    C = 2 / l2 there, and (W, b) are the symmetric (-d/2, d/2) split.
    y holds class indices 0..K-1, all present; `init` is a previous (W, b).
    """
    binary = int(y.max()) == 1
    model = LogisticRegression(
        C=(2.0 if binary else 1.0) / l2,
        solver="lbfgs",
        warm_start=True,
        max_iter=max_iter,
        tol=tol,
    )
    if init is not None:
        w, b = init
        # sklearn's warm start reads coef_/intercept_ of the estimator.
        model.coef_ = (w[1:] - w[:1]) if binary else w.copy()
        model.intercept_ = (b[1:] - b[:1]) if binary else b.copy()
    with warnings.catch_warnings():
        # Tiny lambdas on (nearly) separable data exhaust the fixed iteration
        # budget by design; the sweep then selects on validation anyway.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    if binary:
        w, b = model.coef_, model.intercept_
        return np.concatenate([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
    return model.coef_.copy(), model.intercept_.copy()
