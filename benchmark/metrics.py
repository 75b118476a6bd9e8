"""Accuracy metrics and the fixed validation split shared by the evaluators."""

import math

import numpy as np


def top1_accuracy(labels, predictions):
    """Returns the fraction of examples whose prediction equals the label."""
    labels, predictions = _check_pair(labels, predictions)
    return float(np.mean(labels == predictions))


def mean_per_class_accuracy(labels, predictions):
    """Returns the mean over classes present in `labels` of per-class recall.

    (1/|C|) sum_{c in C} #{i: y_i = c, yhat_i = c} / #{i: y_i = c}, C the set
    of classes in `labels`; the metric of Oxford Pets and Flowers 102.
    """
    labels, predictions = _check_pair(labels, predictions)
    recalls = [np.mean(predictions[labels == c] == c) for c in np.unique(labels)]
    return float(np.mean(recalls))


METRICS = {"top1": top1_accuracy, "mean_per_class": mean_per_class_accuracy}


def get_metric(name):
    """Returns the metric function called `name`, or raises a ValueError."""
    if name not in METRICS:
        raise ValueError(
            f"unknown metric '{name}'; choose one of: {', '.join(sorted(METRICS))}"
        )
    return METRICS[name]


def stratified_split(labels, fraction, seed):
    """Returns (train_idx, val_idx), sorted int64 index arrays partitioning labels.

    Per class with n >= 2 examples, floor(fraction * n + 0.5) examples (at least
    1, at most n - 1) go to validation, drawn with np.random.RandomState(seed);
    classes with one example stay in train. Deterministic for a given
    (labels, fraction, seed): this is the fixed, recorded validation split.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    is_val = np.zeros(len(labels), dtype=bool)
    # Classes in sorted order so the random stream does not depend on row order.
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = len(members)
        if n < 2:
            continue
        # Round half up (not Python's half-to-even) so counts are easy to predict.
        n_val = min(n - 1, max(1, int(math.floor(fraction * n + 0.5))))
        is_val[rng.choice(members, size=n_val, replace=False)] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _check_pair(labels, predictions):
    """Returns labels and predictions as arrays after checking they align."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape or labels.ndim != 1 or not len(labels):
        raise ValueError(
            "labels and predictions must be non-empty [N] arrays of the same "
            f"shape, got {labels.shape} and {predictions.shape}"
        )
    return labels, predictions
