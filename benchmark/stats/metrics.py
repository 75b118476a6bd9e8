"""Accuracy and calibration metrics, temperature scaling, and the fixed
validation split shared by the evaluators.

Calibration (Guo et al. 2017; Naeini et al. 2015): NLL = mean_i -log p_i[y_i];
ECE with B equal-width confidence bins (k-1)/B < conf <= k/B (the first bin
also takes conf = 0): ECE = sum_k (n_k / N) |acc_k - conf_k|, conf = max_j
p_j, acc_k and conf_k the accuracy and mean confidence in bin k; the
temperature T > 0 minimises the NLL of softmax(logits / T).
"""

import math

import numpy as np
import scipy.stats
from scipy import optimize, special

# Search interval of log T: T in [e^-7, e^7] ~ [1e-3, 1e3].
LOG_T_BOUND = 7.0


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


def sample_indices(total, count, seed):
    """Returns `count` of range(total), sorted, drawn without replacement
    with np.random.RandomState(seed); all of them when count >= total (the
    VTAB-1k subsample: 1,000 training examples of any dataset)."""
    if count is None or count >= total:
        return np.arange(total)
    return np.sort(np.random.RandomState(seed).choice(total, size=count, replace=False))


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


def ranks(values):
    """Returns the 1-based ranks of `values`, ties getting their mean rank."""
    return scipy.stats.rankdata(np.asarray(values, dtype=np.float64))


def spearman_rho(x, y):
    """Returns Spearman's rank correlation of two equal-length sequences
    (Pearson's r of their tie-averaged ranks); nan when either is constant."""
    rx, ry = ranks(x), ranks(y)
    if len(rx) < 2 or np.std(rx) == 0 or np.std(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def percentile_interval(values, level=0.95):
    """Returns (low, high), the (1 - level) / 2 and (1 + level) / 2 quantiles
    of the finite `values` (linear interpolation), or (nan, nan) when none
    is finite: the interval of every bootstrap here (the resampling is each
    protocol's own: examples, pairs, or each objective's seeds)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    low, high = np.quantile(values, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def bootstrap_indices(n, resamples=2000, seed=0):
    """Returns the [resamples, n] indices of `resamples` draws of n indices
    with replacement, seeded (each draw one call, as bootstrap_interval
    makes them)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n, size=n) for _ in range(resamples)])


def bootstrap_interval(statistic, n, *, resamples=2000, level=0.95, seed=0):
    """Returns the percentile bootstrap interval (low, high) of
    `statistic(indices)` over `resamples` draws of n indices with
    replacement (`percentile_interval`; nan draws are left out)."""
    indices = bootstrap_indices(n, resamples, seed)
    return percentile_interval([statistic(i) for i in indices], level)


def spearman_rows(x, y):
    """Returns Spearman's rho of each row pair of two [rows, n] arrays at
    once (spearman_rho per row: nan where either row is constant)."""
    rx = scipy.stats.rankdata(x, axis=1)
    ry = scipy.stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    sx = np.sqrt((rx * rx).sum(axis=1))
    sy = np.sqrt((ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(axis=1) / (sx * sy)
    rho[(sx == 0) | (sy == 0)] = np.nan
    return rho


def spearman_with_interval(x, y, **kwargs):
    """Returns (rho, low, high): Spearman's rho of x and y and its bootstrap
    interval over resampled pairs (bootstrap_interval)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rho = spearman_rho(x, y)
    level = kwargs.pop("level", 0.95)
    indices = bootstrap_indices(len(x), **kwargs)
    low, high = percentile_interval(spearman_rows(x[indices], y[indices]), level)
    return rho, low, high
