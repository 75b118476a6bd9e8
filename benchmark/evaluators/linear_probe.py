"""Linear probe: L2-regularised multinomial logistic regression on frozen features.

Protocol of Kornblith et al. (2021), following Kornblith et al. (2019): the
objective is sum_i CE_i + (lambda / 2) ||W||_F^2 (the bias is not penalised),
lambda is chosen from `num_l2` log-spaced values in [l2_min, l2_max] on a fixed
stratified validation split of the training set, sweeping from the largest to
the smallest lambda and warm-starting each fit from the previous solution
(ties keep the larger lambda; `selected` records how many tied); the model is
then refit on train + validation and scored on test. Raw features (no
standardisation). The solver and the sweep are `benchmark.stats.logistic`'s.
"""

import numpy as np

from benchmark.evaluators.base import (
    EVALUATORS,
    FeatureEvaluator,
    Measurement,
    check_positive,
    per_example,
)
from benchmark.stats import logistic, metrics


@EVALUATORS.register("linear_probe")
class LinearProbe(FeatureEvaluator):
    """Linear probe with lambda chosen on validation.

    Args:
      data: dataset spec (train and test splits).
      max_per_class: use at most this many images per class and split.
      num_l2: number of candidate regularisation strengths.
      l2_min: smallest lambda.
      l2_max: largest lambda.
      val_fraction: fraction of each training class held out for selection.
      val_seed: seed of the fixed validation split.
      max_iter: L-BFGS iteration budget per fit.
      tol: L-BFGS tolerance on max |gradient| of the mean-loss objective.
      train_examples: fit on a seeded sample of this many training examples
        (VTAB-1k: 1000, split val_fraction 0.2 into 800 / 200 for
        selection, then refit on all 1000); None: the whole split.
      sample_seed: seed of that sample.
    """

    name = "linear_probe"

    def __init__(
        self,
        *,
        data=None,
        max_per_class=None,
        num_l2=45,
        l2_min=1e-6,
        l2_max=1e5,
        val_fraction=0.2,
        val_seed=0,
        max_iter=1000,
        tol=1e-6,
        train_examples=None,
        sample_seed=0,
    ):
        check_positive(max_per_class=max_per_class, num_l2=num_l2, max_iter=max_iter)
        check_positive(train_examples=train_examples)
        logistic.l2_grid(num_l2, l2_min, l2_max)  # Validates the grid.
        self.data = data
        self.max_per_class = max_per_class
        self.num_l2 = num_l2
        self.l2_min = l2_min
        self.l2_max = l2_max
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.max_iter = max_iter
        self.tol = tol
        self.train_examples = train_examples
        self.sample_seed = sample_seed

    def l2_grid(self):
        """Returns the candidate lambdas, largest first (the sweep order)."""
        return logistic.l2_grid(self.num_l2, self.l2_min, self.l2_max)

    def evaluate(self, train, test, metric="top1"):
        """Yields Measurement("accuracy", test score, {"l2", "val_accuracy",
        "ties", "tied_l2_range"})."""
        score = metrics.get_metric(metric)
        train = train.subset(
            metrics.sample_indices(len(train), self.train_examples, self.sample_seed)
        )
        classes = np.unique(train.labels)
        if len(classes) < 2:
            raise ValueError("linear_probe needs at least 2 classes in train")
        y = np.searchsorted(classes, train.labels)
        tr, val = metrics.stratified_split(y, self.val_fraction, self.val_seed)
        params, chosen = logistic.select_and_refit(
            train.features,
            y,
            tr,
            val,
            self.l2_grid(),
            lambda params, vx, vy: score(vy, logistic.predict(params, vx)),
            max_iter=self.max_iter,
            tol=self.tol,
        )
        predictions = classes[logistic.predict(params, np.asarray(test.features))]
        yield Measurement(
            "accuracy",
            score(test.labels, predictions),
            selected=chosen.selected("l2", "val_accuracy"),
            predictions=per_example(test.ids, predictions, test.labels),
            train_size=len(train),
        )
