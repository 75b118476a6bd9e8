"""Calibration of the module's own classifier: NLL and ECE, raw and after
temperature scaling.

Probabilities are softmax(logits / T) of the module's `logits` signature (a
leading background class beyond the dataset's classes is dropped), read
through the harness's cached extraction (central crop `crop_fraction`, 0.875
as for evaluating a classifier). The metrics and the temperature fit are
`benchmark.stats.metrics`' (NLL; ECE with `num_bins` equal-width confidence bins;
T minimising the NLL by a bounded search over log T). A stratified
`heldout_fraction` of the evaluated split (seeded) fits T and the rest
measures both the raw and the scaled numbers, so raw and scaled are compared
on the same images.
"""

import numpy as np
from scipy import special

from benchmark.evaluators.base import (
    EVALUATORS,
    Evaluator,
    Measurement,
    check_positive,
)
from benchmark.modules.loading import ModuleError
from benchmark.stats import metrics


@EVALUATORS.register("calibration")
class Calibration(Evaluator):
    """NLL, ECE and top-1, raw and temperature-scaled.

    Args:
      data: dataset spec of the module's own task (its classes are the
        logits').
      num_bins: ECE bins.
      heldout_fraction: fraction of each class of the split used to fit T.
      heldout_seed: seed of that split.
      split: the split evaluated (None: the dataset's test split).
      max_per_class: use at most this many images per class.
      crop_fraction: central crop fraction (0.875: the classifier's usual
        evaluation crop).
    """

    name = "calibration"
    requires = ("logits",)

    def __init__(
        self,
        *,
        data=None,
        num_bins=15,
        heldout_fraction=0.5,
        heldout_seed=0,
        split=None,
        max_per_class=None,
        crop_fraction=0.875,
    ):
        check_positive(num_bins=num_bins, max_per_class=max_per_class)
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(
                f"heldout_fraction must be in (0, 1), got {heldout_fraction}"
            )
        self.data = data
        self.num_bins = num_bins
        self.heldout_fraction = heldout_fraction
        self.heldout_seed = heldout_seed
        self.split = split
        self.max_per_class = max_per_class
        self.crop_fraction = crop_fraction

    def run(self, context):
        """Yields "nll", "ece", "top1", and "nll_temperature_scaled",
        "ece_temperature_scaled" (selected: the fitted temperature)."""
        data = context.dataset(self.data)
        split = self.split or data.test_split
        scored = context.features(
            data,
            split,
            output="logits",
            max_per_class=self.max_per_class,
            crop_fraction=self.crop_fraction,
        )
        logits, labels = scored.features.astype(np.float64), scored.labels
        if logits.shape[-1] == data.num_classes + 1:
            logits = logits[:, 1:]  # The authors' unused background class 0.
        if logits.shape[-1] != data.num_classes:
            raise ModuleError(
                f"{context.module.handle} has {logits.shape[-1]} logits but "
                f"{data.name} has {data.num_classes} classes; calibrate a module "
                "on its own task"
            )
        # The held-out ("validation") part of the split fits T.
        evaluate, fit = metrics.stratified_split(
            labels, self.heldout_fraction, self.heldout_seed
        )
        temperature = metrics.fit_temperature(logits[fit], labels[fit])
        selected = {"temperature": temperature}
        where = dict(
            dataset=data.name, split=split, train_size=len(fit), test_size=len(evaluate)
        )
        x, y = logits[evaluate], labels[evaluate]
        for suffix, t, chosen in (
            ("", 1.0, {}),
            ("_temperature_scaled", temperature, selected),
        ):
            values = {
                "nll": metrics.negative_log_likelihood(x / t, y),
                "ece": metrics.expected_calibration_error(
                    special.softmax(x / t, 1), y, self.num_bins
                ),
            }
            if not suffix:  # A temperature does not change the argmax.
                values["top1"] = float(np.mean(np.argmax(x, 1) == y))
            for metric, value in values.items():
                yield Measurement(f"{metric}{suffix}", value, selected=chosen, **where)
        context.report(f"[calibration] {data.name}/{split}: T = {temperature:.4f}")
