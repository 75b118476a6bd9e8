"""Ranks with uncertainty: which models' leads are larger than the noise.

Input: for each model and task (a dataset of an evaluation family), the
model's values over seeds. A model's rank on a task is its position among
the models that have the task, by the mean over its seeds (1 = best; ties
share the average rank). Its **mean rank** is the mean over the tasks that
every compared model has (tasks some model lacks are left out, so every
model is ranked on the same tasks).

The interval is a bootstrap over both sources of noise. Each of `samples`
replicates resamples the tasks with replacement (which datasets) and, for
every model and task, that model's seeds with replacement (which training
runs), then recomputes every model's mean rank. The 95% interval is the
2.5th and 97.5th percentiles of the replicates (numpy's default
interpolation), seeded, so a leaderboard gives the same intervals each time.

**Tied groups.** In order of mean rank, a model joins the group of the best
model before it when their intervals overlap; otherwise it starts a new
group. Models in one group are not distinguishable on this evidence.
"""

import dataclasses

import numpy as np
import scipy.stats

from benchmark.stats import metrics

SAMPLES = 1000
SEED = 0


@dataclasses.dataclass(frozen=True)
class RankStats:
    """One model's mean rank, its bootstrap interval and its tied group.

    Attributes:
      model: the model key.
      mean_rank: the mean rank over the common tasks.
      low, high: the 95% bootstrap interval of the mean rank.
      group: 1 for the best tied group, 2 for the next, ...
      tasks: the number of tasks ranked on.
    """

    model: object
    mean_rank: float
    low: float
    high: float
    group: int
    tasks: int


def average_ranks(values):
    """Returns the ranks of `values` (higher is better: the largest gets 1),
    ties sharing the average of their positions."""
    return metrics.ranks(-np.asarray(values, dtype=float))


def mean_ranks(table):
    """Returns the mean rank of each model (rows) over tasks (columns) of a
    [models, tasks] array of values; a [..., models, tasks] array gives one
    mean rank per model for each leading index."""
    table = np.asarray(table, dtype=float)
    if table.shape[-1] == 0:
        return np.full(table.shape[:-1], np.nan)
    # Average ranks with ties, highest value first, along the models axis.
    ranks = scipy.stats.rankdata(-table, method="average", axis=-2)
    return ranks.mean(axis=-1)


# Replicates drawn and ranked at once: bounds the draws' memory on a big
# leaderboard (replicates x models x tasks x seeds floats per chunk).
CHUNK_VALUES = 4_000_000


def bootstrap_draws(rng, samples, shape, max_seeds):
    """Yields (picked, uniform) per chunk of replicates: `picked` [chunk,
    tasks] the resampled task indices, `uniform` [chunk, models, tasks,
    max_seeds] the numbers in [0, 1) that pick each resampled seed (index =
    floor(uniform * seeds of that model and task))."""
    models, tasks = shape
    per_replicate = max(1, models * tasks * max_seeds)
    chunk = max(1, min(samples, CHUNK_VALUES // per_replicate))
    done = 0
    while done < samples:
        size = min(chunk, samples - done)
        picked = rng.integers(0, tasks, size=(size, tasks))
        yield picked, rng.random((size, models, tasks, max_seeds))
        done += size


def bootstrap_mean_ranks(seeds, draws):
    """Returns the [replicates, models] mean ranks of `draws`
    (bootstrap_draws) over `seeds`: [model][task] arrays of values."""
    models, tasks = len(seeds), len(seeds[0])
    counts = np.array([[len(v) for v in row] for row in seeds])
    width = counts.max()
    padded = np.zeros((models, tasks, width))
    for i, row in enumerate(seeds):
        for j, v in enumerate(row):
            padded[i, j, : len(v)] = v
    out = []
    rows = np.arange(models)[None, :, None, None]
    for picked, uniform in draws:
        n = counts[:, picked].transpose(1, 0, 2)[..., None]  # [b, models, tasks, 1]
        index = np.floor(uniform * n).astype(int)
        valid = np.arange(width) < n
        values = padded[rows, picked[:, None, :, None], np.where(valid, index, 0)]
        table = (values * valid).sum(-1) / n[..., 0]
        out.append(mean_ranks(table))
    return np.concatenate(out)


def rank_models(values, samples=SAMPLES, seed=SEED):
    """Returns [RankStats], best first, of `values`: {model: {task: [value
    per seed, ...]}} (module docstring). Raises ValueError with fewer than
    two models or no task they all have."""
    models = list(values)
    if len(models) < 2:
        raise ValueError("ranking needs at least two models")
    tasks = sorted(set.intersection(*(set(values[m]) for m in models)))
    if not tasks:
        raise ValueError(
            "the models share no task to rank them on; give them a common "
            "dataset of the evaluation"
        )
    seeds = [[np.asarray(values[m][t], dtype=float) for t in tasks] for m in models]
    point = np.array([[s.mean() for s in row] for row in seeds])
    observed = mean_ranks(point)
    width = max(len(s) for row in seeds for s in row)
    draws = bootstrap_draws(
        np.random.default_rng(seed), samples, (len(models), len(tasks)), width
    )
    replicates = bootstrap_mean_ranks(seeds, draws)
    low, high = np.percentile(replicates, [2.5, 97.5], axis=0)
    order = np.argsort(observed, kind="stable")
    stats, group, leader = [], 0, None
    for i in order:
        if leader is None or low[i] > high[leader]:
            group, leader = group + 1, i
        stats.append(
            RankStats(
                models[i],
                float(observed[i]),
                float(low[i]),
                float(high[i]),
                group,
                len(tasks),
            )
        )
    return stats
