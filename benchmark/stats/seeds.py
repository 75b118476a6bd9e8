"""Seed statistics of leaderboard rows.

One *configuration* is (source, arch, objective, pretrain_dataset) and, for
measured rows, the module options and display name (`variant`): the
objective column carries its hyperparameters (``cosine_softmax(tau=0.01)``),
so another hyperparameter is another configuration, and seeds pool only
when everything but the seed is equal. Its rows of one result
(evaluation, dataset, split, metric) over seeds aggregate to

  mean = (1/n) sum_i v_i,   std = sqrt(sum_i (v_i - mean)^2 / (n - 1)),
  95% interval = mean -+ t_{0.975, n-1} std / sqrt(n)   (Student t; n >= 2).

A configuration's difference from the baseline objective (softmax) of the
same source, arch and pretraining data is tested with Welch's two-sided
t-test (unequal variances):

  t = (mean_a - mean_b) / sqrt(s_a^2 / n_a + s_b^2 / n_b),
  dof = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1)),

significant when p < 0.05; it needs two seeds on each side. Seeds of
different configurations are independent training runs, so the test is
unpaired by design (unlike the CI gate, which pairs test examples).
docs/evaluations.md states the choice.
"""

import dataclasses
import functools
import json
import math

from scipy import stats as scipy_stats

CONFIG_COLUMNS = ("source", "arch", "objective", "pretrain_dataset")
RESULT_COLUMNS = ("evaluation", "dataset", "split", "metric")
BASELINE_OBJECTIVE = "softmax"
ALPHA = 0.05
TEST_NAME = "Welch's two-sided t-test"


@dataclasses.dataclass(frozen=True)
class SeedStats:
    """One configuration's values of one result over seeds.

    Attributes:
      values: the per-seed values, in seed order.
      seeds: their seeds ("" where a row records none).
      mean, std: mean and sample standard deviation (std is None for n = 1).
      low, high: the 95% Student-t interval of the mean (None for n = 1).
    """

    values: tuple
    seeds: tuple
    mean: float
    std: float | None
    low: float | None
    high: float | None

    @property
    def n(self):
        return len(self.values)


@dataclasses.dataclass(frozen=True)
class Difference:
    """A configuration against the baseline objective on one result."""

    delta: float  # mean minus the baseline's mean
    p_value: float | None  # None when either side has fewer than two seeds
    significant: bool

    @property
    def tested(self):
        return self.p_value is not None


def seed_stats(values, seeds=None):
    """Returns the SeedStats of `values` (one per seed)."""
    values = tuple(float(v) for v in values)
    if not values:
        raise ValueError("seed statistics need at least one value")
    seeds = tuple(seeds) if seeds is not None else ("",) * len(values)
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return SeedStats(values, seeds, mean, None, None, None)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(scipy_stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return SeedStats(values, seeds, mean, std, mean - half, mean + half)


def welch(a, b):
    """Returns the two-sided p-value of Welch's t-test between SeedStats `a`
    and `b`, or None when either has fewer than two values. Equal constant
    samples give p = 1 (no evidence of a difference)."""
    if a.n < 2 or b.n < 2:
        return None
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    if va + vb == 0:
        return 1.0 if a.mean == b.mean else 0.0
    t = (a.mean - b.mean) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (
        (va**2 / (a.n - 1) if va else 0.0) + (vb**2 / (b.n - 1) if vb else 0.0)
    )
    return float(2 * scipy_stats.t.sf(abs(t), dof))


def config_key(row):
    """Returns a row's configuration: CONFIG_COLUMNS and its `variant`, so
    that seeds pool only when everything but the seed is equal."""
    return (*(row.get(c, "") for c in CONFIG_COLUMNS), variant(row))


def variant(row):
    """Returns what, besides CONFIG_COLUMNS, tells a measured row's module
    apart (see _variant); memoised on the cells it reads, since views ask
    for every row's configuration many times."""
    protocol = row.get("protocol") or "{}"
    if not isinstance(protocol, str):
        protocol = json.dumps(protocol, sort_keys=True)
    return _variant(
        row.get("source", ""),
        row.get("name", ""),
        protocol,
        row.get("seed", ""),
        row.get("module_sha256") or row.get("handle", ""),
    )


@functools.lru_cache(maxsize=65536)
def _variant(source, name, protocol_text, seed, module):
    """Returns what, besides CONFIG_COLUMNS, tells a measured row's module
    apart: its display name, the module options it was run with (input
    normalisation and range, size, signature, output), the benchmark config
    that measured it (one module scored under two configs, such as the
    mini-zoo's and vtab1k, is two configurations: their linear probes are
    different protocols) and, for a row with no seed, the module's hash (an
    unseeded module is nobody's seed). "" for reported rows."""
    if source.startswith("paper:"):
        return ""
    try:
        protocol = json.loads(protocol_text)
        contract = protocol.get("input") or {}
    except (json.JSONDecodeError, AttributeError):
        protocol, contract = {}, {}
    parts = [name]
    parts += [
        json.dumps(contract.get(k))
        for k in ("input_normalization", "value_range", "image_size")
    ]
    parts += [str(contract.get(k) or "") for k in ("signature", "output")]
    parts.append(str(protocol.get("config") or ""))
    if not seed:
        parts.append(module[:12])
    return "|".join(parts)


def result_key(row):
    return tuple(row.get(c, "") for c in RESULT_COLUMNS)


def aggregate(rows):
    """Returns {(config key, result key): SeedStats} over the rows' seeds.

    Rows are ordered by seed within a group (numeric seeds numerically); each
    row is one observation.
    """
    groups = {}
    for row in rows:
        groups.setdefault((config_key(row), result_key(row)), []).append(row)
    out = {}
    for key, group in groups.items():
        group = sorted(group, key=lambda r: seed_order(r.get("seed", "")))
        out[key] = seed_stats(
            [r["value"] for r in group], [r.get("seed", "") for r in group]
        )
    return out


def differences(aggregated, baseline=BASELINE_OBJECTIVE, alpha=ALPHA):
    """Returns {(config key, result key): Difference} against the baseline
    objective of the same source, arch and pretraining data, for every
    configuration that has one (the baseline itself excluded)."""
    objective = CONFIG_COLUMNS.index("objective")
    out = {}
    for (config, result), stats in aggregated.items():
        if config[objective] == baseline:
            continue
        base_config = config[:objective] + (baseline,) + config[objective + 1 :]
        base = aggregated.get((base_config, result))
        if base is None:
            continue
        p = welch(stats, base)
        out[config, result] = Difference(
            stats.mean - base.mean, p, p is not None and p < alpha
        )
    return out


def seed_order(seed):
    try:
        return (0, float(seed), "")
    except ValueError:
        return (1, 0.0, str(seed))


def interval_text(stats, scale=1.0, digits=1):
    """Returns "mean" or "mean +-half (n)" for display, values times `scale`."""
    mean = stats.mean * scale
    if stats.n == 1:
        return f"{mean:.{digits}f}"
    half = (stats.high - stats.mean) * scale
    return f"{mean:.{digits}f}±{half:.{digits}f} ({stats.n})"
