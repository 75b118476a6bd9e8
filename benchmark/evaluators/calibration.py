"""Calibration of the module's own classifier: NLL and ECE, raw and after
temperature scaling.

Probabilities are softmax(logits / T) of the module's `logits` signature.
NLL = mean_i -log p_i[y_i]. ECE (Guo et al. 2017; Naeini et al. 2015) with
B = 15 equal-width confidence bins (k-1)/B < conf <= k/B (the first bin also
takes conf = 0): ECE = sum_k (n_k / N) |acc_k - conf_k|, conf = max_j p_j,
acc_k and conf_k the accuracy and mean confidence in bin k. Temperature
scaling fits T > 0 by minimising the NLL of held-out logits: a stratified
`heldout_fraction` of the evaluation split (seeded) is used to fit T and the
rest to measure both the raw and the scaled numbers, so raw and scaled are
compared on the same images.
"""

import numpy as np
import tensorflow as tf
from scipy import optimize, special

from benchmark import metrics
from benchmark.evaluators.module_base import (
    MODULE_EVALUATORS,
    ModuleEvaluator,
    ModuleMeasurement,
    load_saved_module,
)
from benchmark.modules import ModuleError
from zoo import data as zoo_data

# Search interval of log T: T in [e^-7, e^7] ~ [1e-3, 1e3].
LOG_T_BOUND = 7.0


@MODULE_EVALUATORS.register("calibration")
class Calibration(ModuleEvaluator):
    """NLL, ECE and top-1, raw and temperature-scaled.

    Args:
      num_bins: ECE bins.
      heldout_fraction: fraction of each class of the split used to fit T.
      heldout_seed: seed of that split.
      split: the split evaluated (None: the dataset's test split).
      max_per_class: use at most this many images per class.
      batch_size: images per forward pass.
      crop_fraction: central crop fraction (0.875: the classifier's usual
        evaluation crop).
      image_size: override of the module's input size.
    """

    name = "calibration"

    def __init__(
        self,
        *,
        num_bins=15,
        heldout_fraction=0.5,
        heldout_seed=0,
        split=None,
        max_per_class=None,
        batch_size=128,
        crop_fraction=0.875,
        image_size=None,
    ):
        self.num_bins = num_bins
        self.heldout_fraction = heldout_fraction
        self.heldout_seed = heldout_seed
        self.split = split
        self.max_per_class = max_per_class
        self.batch_size = batch_size
        self.crop_fraction = crop_fraction
        self.image_size = image_size

    def run(self, module, data, *, strategy=None, report=print):
        """Yields "nll", "ece", "top1", and "nll_temperature_scaled",
        "ece_temperature_scaled" (selected: the fitted temperature).

        Args:
          module: a module handle, LoadedModule or SavedModule with a `logits`
            signature over `data`'s classes (the module's own task).
          data: a zoo.data.ImageDataset.
        """
        del strategy  # Inference only.
        saved = load_saved_module(module, self.image_size)
        size = saved.require_image_size()
        logits_fn = saved.logits_fn()
        split = self.split or data.test_split
        examples = data.as_dataset(split, max_per_class=self.max_per_class)
        batches = examples.map(
            lambda e: (
                zoo_data.eval_preprocess(e["image"], size, self.crop_fraction),
                e["label"],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        ).batch(self.batch_size)
        chunks, labels = [], []
        for images, batch_labels in batches:
            chunks.append(logits_fn(images).numpy().astype(np.float64))
            labels.append(batch_labels.numpy())
        logits, labels = np.concatenate(chunks), np.concatenate(labels)
        if logits.shape[-1] != data.num_classes:
            raise ModuleError(
                f"{saved.handle} has {logits.shape[-1]} logits but {data.name} has "
                f"{data.num_classes} classes; calibrate a module on its own task"
            )
        # The held-out ("validation") part of the split fits T.
        evaluate, fit = metrics.stratified_split(
            labels, self.heldout_fraction, self.heldout_seed
        )
        temperature = fit_temperature(logits[fit], labels[fit])
        selected = {"temperature": temperature}
        where = dict(
            dataset=data.name,
            split=split,
            train_size=len(fit),
            test_size=len(evaluate),
        )
        x, y = logits[evaluate], labels[evaluate]
        for suffix, t, chosen in (
            ("", 1.0, {}),
            ("_temperature_scaled", temperature, selected),
        ):
            values = {
                "nll": negative_log_likelihood(x / t, y),
                "ece": expected_calibration_error(
                    special.softmax(x / t, 1), y, self.num_bins
                ),
            }
            if not suffix:  # A temperature does not change the argmax.
                values["top1"] = float(np.mean(np.argmax(x, 1) == y))
            for metric, value in values.items():
                yield ModuleMeasurement(
                    f"{metric}{suffix}", value, selected=chosen, **where
                )
        report(f"[calibration] {data.name}/{split}: T = {temperature:.4f}")


def negative_log_likelihood(logits, labels):
    """Returns mean_i -log softmax(logits_i)[y_i]."""
    logits = np.asarray(logits, dtype=np.float64)
    log_probs = logits - special.logsumexp(logits, axis=1, keepdims=True)
    return float(-np.mean(log_probs[np.arange(len(labels)), labels]))


def expected_calibration_error(probs, labels, num_bins=15):
    """Returns ECE with `num_bins` equal-width confidence bins (module
    docstring): sum_k (n_k / N) |acc_k - conf_k|."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = np.argmax(probs, axis=1) == np.asarray(labels)
    # Bin k holds (k-1)/B < conf <= k/B; ceil(conf * B) - 1, with 0 in bin 0.
    bins = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0, num_bins - 1)
    acc = np.bincount(bins, weights=correct, minlength=num_bins)
    conf = np.bincount(bins, weights=confidence, minlength=num_bins)
    return float(np.sum(np.abs(acc - conf)) / len(confidence))


def fit_temperature(logits, labels):
    """Returns the T > 0 minimising negative_log_likelihood(logits / T, labels).

    The NLL is convex in 1/T, so its minimum over log T (bounded Brent search
    on [-LOG_T_BOUND, LOG_T_BOUND]) is the global one in that range.
    """
    logits = np.asarray(logits, dtype=np.float64)
    result = optimize.minimize_scalar(
        lambda log_t: negative_log_likelihood(logits / np.exp(log_t), labels),
        bounds=(-LOG_T_BOUND, LOG_T_BOUND),
        method="bounded",
        options={"xatol": 1e-8},
    )
    return float(np.exp(result.x))
