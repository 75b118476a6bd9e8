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
    values = np.asarray(values, dtype=float)
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values))
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def mean_ranks(table):
    """Returns the mean rank of each model (rows) over tasks (columns) of a
    [models, tasks] array of values."""
    if table.shape[1] == 0:
        return np.full(table.shape[0], np.nan)
    ranks = np.stack([average_ranks(table[:, t]) for t in range(table.shape[1])], 1)
    return ranks.mean(axis=1)


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
    rng = np.random.default_rng(seed)
    replicates = np.empty((samples, len(models)))
    for b in range(samples):
        picked = rng.integers(0, len(tasks), size=len(tasks))
        table = np.empty((len(models), len(tasks)))
        for i, row in enumerate(seeds):
            for j, t in enumerate(picked):
                draw = row[t][rng.integers(0, len(row[t]), size=len(row[t]))]
                table[i, j] = draw.mean()
        replicates[b] = mean_ranks(table)
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
