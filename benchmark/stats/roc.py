"""Area under the ROC curve: the exact value, the paper's 1000-threshold
approximation, and seeded bootstrap intervals.

The paper (Kornblith et al. 2021, Chexpert) approximates the AUC "with 1000
evenly spaced thresholds", as tf.keras.metrics.AUC(num_thresholds=1000) does:
thresholds t_0 = -eps, t_i = i / 999, t_999 = 1 + eps on scores in [0, 1]; an
example is called positive when its score is > t; the ROC points
(FPR(t), TPR(t)) are joined by straight lines (trapezoidal rule).
"""

import numpy as np
from scipy import stats

from benchmark.stats.metrics import percentile_interval

EPSILON = 1e-7  # Keras' epsilon: the end thresholds sit just outside [0, 1].


def _check(labels, scores):
    """Returns (bool labels, float64 scores) after checking they are usable."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and scores must be [N] arrays of one shape, got {labels.shape} "
            f"and {scores.shape}"
        )
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("the AUC needs at least one positive and one negative")
    return labels, scores


def exact_auc(labels, scores):
    """Returns the exact ROC AUC: P(score_pos > score_neg) + P(tie) / 2.

    Mann-Whitney form: (sum of the positives' ranks - P (P + 1) / 2) / (P N)
    with average ranks for ties; equals sklearn.metrics.roc_auc_score.
    """
    labels, scores = _check(labels, scores)
    ranks = stats.rankdata(scores)
    num_pos = labels.sum()
    num_neg = len(labels) - num_pos
    return float(
        (ranks[labels].sum() - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg)
    )


def thresholds(num_thresholds=1000):
    """Returns the `num_thresholds` evenly spaced thresholds on [0, 1], the
    end points moved out by EPSILON (tf.keras.metrics.AUC's)."""
    if num_thresholds < 2:
        raise ValueError(f"num_thresholds must be >= 2, got {num_thresholds}")
    grid = np.linspace(0.0, 1.0, num_thresholds)
    grid[0], grid[-1] = -EPSILON, 1.0 + EPSILON
    return grid


def threshold_auc(labels, scores, num_thresholds=1000):
    """Returns the ROC AUC approximated with `num_thresholds` evenly spaced
    thresholds on scores in [0, 1] (module docstring)."""
    labels, scores = _check(labels, scores)
    pos_hist, neg_hist = _bucket_counts(labels, scores, num_thresholds)
    return float(_auc_from_counts(pos_hist[None], neg_hist[None])[0])


def bootstrap_interval(
    labels, scores, *, num_thresholds=1000, samples=1000, level=0.95, seed=0
):
    """Returns the (low, high) percentile bootstrap interval of `threshold_auc`.

    `samples` resamples of the test examples with replacement (numpy
    RandomState(seed)); resamples without both classes are dropped. The bounds
    are the (1 - level) / 2 and (1 + level) / 2 quantiles of their AUCs.
    """
    labels, scores = _check(labels, scores)
    bucket = _bucket_index(scores, num_thresholds)
    rng = np.random.RandomState(seed)
    n = len(labels)
    draws = rng.randint(0, n, size=(samples, n))
    # One bincount per resample over (bucket, class) pairs: O(samples * n).
    codes = bucket[draws] * 2 + labels[draws]
    offsets = np.arange(samples)[:, None] * (2 * num_thresholds)
    counts = np.bincount(
        (codes + offsets).ravel(), minlength=samples * 2 * num_thresholds
    )
    counts = counts.reshape(samples, num_thresholds, 2)
    neg_hist, pos_hist = counts[..., 0], counts[..., 1]
    valid = (pos_hist.sum(1) > 0) & (neg_hist.sum(1) > 0)
    aucs = _auc_from_counts(pos_hist[valid], neg_hist[valid])
    return percentile_interval(aucs, level)


def _bucket_index(scores, num_thresholds):
    """Returns, per score, the number of thresholds strictly below it minus 1:
    the score counts as positive at thresholds t_0 .. t_index."""
    grid = thresholds(num_thresholds)
    return np.searchsorted(grid, scores, side="left") - 1


def _bucket_counts(labels, scores, num_thresholds):
    """Returns (positive, negative) counts per bucket, [num_thresholds] each.

    Scores below t_0 (possible only outside [0, 1]) get bucket -1, i.e. are
    negative at every threshold; they are clipped into a dropped slot.
    """
    bucket = np.clip(_bucket_index(scores, num_thresholds), -1, num_thresholds - 1)
    pos = np.bincount(bucket[labels] + 1, minlength=num_thresholds + 1)[1:]
    neg = np.bincount(bucket[~labels] + 1, minlength=num_thresholds + 1)[1:]
    return pos, neg


def _auc_from_counts(pos_hist, neg_hist):
    """Returns [B] trapezoidal AUCs from [B, T] per-bucket counts.

    TP(t_i) = #positives with bucket >= i (score > t_i): a reversed cumsum.
    """
    tp = np.cumsum(pos_hist[:, ::-1], axis=1)[:, ::-1]
    fp = np.cumsum(neg_hist[:, ::-1], axis=1)[:, ::-1]
    tpr = tp / pos_hist.sum(1, keepdims=True)
    fpr = fp / neg_hist.sum(1, keepdims=True)
    # Thresholds ascend, so FPR descends: the area is sum over consecutive
    # points of (fpr_i - fpr_{i+1}) * (tpr_i + tpr_{i+1}) / 2.
    widths = fpr[:, :-1] - fpr[:, 1:]
    heights = (tpr[:, :-1] + tpr[:, 1:]) / 2
    return np.sum(widths * heights, axis=1)
