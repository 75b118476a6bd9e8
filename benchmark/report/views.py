"""Terminal views of a leaderboard: a compact summary (one line per
configuration, a few headline columns) and a per-evaluation detail table with
short dataset names. Configurations aggregate over seeds (benchmark/stats/seeds.py):
a cell with several seeds reads "mean±half-interval (n)", and a "*" marks a
difference from softmax that Welch's t-test calls significant (p < 0.05).

Summary columns (each the configuration's mean over seeds):
  top1      source-task top-1: the `holdout` evaluation on the pretraining
            data, else `imagenet_ood` top-1 on it;
  linear_probe, knn, fine_tune
            the mean over transfer datasets of that evaluation's accuracy
            (the per-seed mean over datasets when every seed has them all);
  r2        class separation R^2 on the pretraining data, else the first
            dataset that has one;
  chexpert  mean AUC of the official-validation setting (`auc_mean`, else
            the mean of its per-pathology AUCs).
"""

import math
import typing

from benchmark.results import names
from benchmark.stats import seeds

SUMMARY_COLUMNS = tuple(names.SUMMARY)
RANK_COLUMNS = names.RANK_COLUMNS
TRANSFER = {column: column for column in names.TRANSFER}
PERCENT = {column for column, (_, percent) in names.SUMMARY.items() if percent}


def short_dataset(name):
    """Returns a dataset's display name: the folder name of an
    `imagefolder:` or `chexpert:` path, the TFDS name without `tfds:`."""
    kind, sep, rest = name.partition(":")
    if not sep:
        return name
    if kind == "tfds":
        return rest
    if kind in ("imagefolder", "chexpert") and rest.startswith("/"):
        leaf = rest.rstrip("/").rsplit("/", 1)[-1]
        return leaf if kind == "imagefolder" else f"chexpert:{leaf}"
    return name


def _configurations(rows):
    order = []
    for row in rows:
        key = seeds.config_key(row)
        if key not in order:
            order.append(key)
    return order


def _per_seed(rows, config, pick):
    """Returns {seed: value} of `pick(rows of that seed)` for a configuration."""
    by_seed = {}
    for row in rows:
        if seeds.config_key(row) == config:
            by_seed.setdefault(row.get("seed", ""), []).append(row)
    out = {}
    for seed, group in by_seed.items():
        value = pick(group)
        if value is not None:
            out[seed] = value
    return out


def _mean(values):
    values = [v for v in values if v is not None]
    return math.fsum(values) / len(values) if values else None


def _pick(column, pretrain):
    """Returns a function of one seed's rows -> the summary column's value."""

    def values(group, evaluation, metric=None):
        return [
            float(r["value"])
            for r in group
            if r["evaluation"] == evaluation
            and (metric is None or r["metric"] == metric)
        ]

    def pick(group):
        if column == "top1":
            for evaluation in ("holdout", "imagenet_ood"):
                hits = [
                    float(r["value"])
                    for r in group
                    if r["evaluation"] == evaluation
                    and r["metric"] == "top1"
                    and r["dataset"] in (pretrain, "")
                ]
                hits = hits or [
                    float(r["value"])
                    for r in group
                    if r["evaluation"] == evaluation and r["metric"] == "top1"
                ]
                if hits:
                    return hits[0]
            return None
        if column in TRANSFER:
            return _mean(values(group, TRANSFER[column], "accuracy"))
        if column == "r2":
            rows = [r for r in group if r["evaluation"] == "class_separation"]
            own = [float(r["value"]) for r in rows if r["dataset"] == pretrain]
            return (own or [float(r["value"]) for r in rows] or [None])[0]
        if column == "chexpert":
            rows = [
                r
                for r in group
                if r["evaluation"] == "chexpert" and r["split"].endswith("valid")
            ]
            mean = [float(r["value"]) for r in rows if r["metric"] == "auc_mean"]
            if mean:
                return mean[0]
            return _mean(
                [float(r["value"]) for r in rows if _is_pathology_auc(r["metric"])]
            )
        raise ValueError(f"unknown summary column {column}")

    return pick


def summary(rows, rank_by="linear_probe"):
    """Returns (header, lines, stats) of the summary view, best first by the
    column of evaluation `rank_by`. `stats` maps (config, column) to the
    SeedStats of that cell."""
    if rank_by not in RANK_COLUMNS:
        raise ValueError(
            f"cannot rank the summary by '{rank_by}'; choose one of: "
            f"{', '.join(RANK_COLUMNS)}"
        )
    rank_column = RANK_COLUMNS[rank_by]
    configs = _configurations(rows)
    stats = {}
    for config in configs:
        pretrain = config[seeds.CONFIG_COLUMNS.index("pretrain_dataset")]
        for column in SUMMARY_COLUMNS:
            per_seed = _per_seed(rows, config, _pick(column, pretrain))
            if per_seed:
                order = sorted(per_seed, key=seeds.seed_order)
                stats[config, column] = seeds.seed_stats(
                    [per_seed[s] for s in order], order
                )

    def key(config):  # every summary column is higher-is-better
        s = stats.get((config, rank_column))
        return (s is None, 0.0 if s is None else -s.mean)

    ordered = sorted(configs, key=key)
    header = ["rank", "objective", "arch", "source", "seeds", *SUMMARY_COLUMNS]
    lines, previous, rank = [], None, 0
    for i, config in enumerate(ordered):
        s = stats.get((config, rank_column))
        value = None if s is None else s.mean
        if value is None:
            shown = "-"
        else:
            if value != previous:
                rank = i + 1
            shown, previous = str(rank), value
        source, arch, objective, _ = config
        counts = {s.n for (c, _), s in stats.items() if c == config}
        lines.append(
            [
                shown,
                objective,
                arch,
                source_label(source),
                "/".join(str(n) for n in sorted(counts)) or "0",
                *[_cell(stats, config, column) for column in SUMMARY_COLUMNS],
            ]
        )
    return header, lines, stats


def _cell(stats, config, column):
    s = stats.get((config, column))
    if s is None:
        return ""
    if column in PERCENT:
        return seeds.interval_text(s, 100.0, 1)
    return seeds.interval_text(s, 1.0, 3)


class DetailTable(typing.NamedTuple):
    """One evaluation's results: `columns` are (dataset, split, metric) with
    display `names`; `stats` and `diffs` are keyed (config, (evaluation,
    dataset, split, metric)) as in seeds.aggregate and seeds.differences."""

    evaluation: str
    configs: list
    columns: list
    names: list
    stats: dict
    diffs: dict


def configurations(rows):
    """Returns the rows' configuration keys (seeds.config_key), first seen first."""
    return _configurations(rows)


def detail_table(rows, evaluation):
    """Returns the DetailTable of one evaluation: a column per dataset (and
    setting) with its headline metric."""
    chosen = [r for r in rows if r["evaluation"] == evaluation]
    if evaluation == "chexpert":
        chosen = _with_chexpert_means(chosen)
    if not chosen:
        present = sorted({r["evaluation"] for r in rows})
        raise ValueError(
            f"no '{evaluation}' rows; evaluations present: {', '.join(present)}"
        )
    metric_of = {}
    for r in chosen:
        metric_of.setdefault((r["dataset"], r["split"]), []).append(r["metric"])
    columns = []
    for (dataset, split), metrics in metric_of.items():
        metric = _headline(evaluation, metrics)
        if metric is not None:
            columns.append((dataset, split, metric))
    chosen = [r for r in chosen if (r["dataset"], r["split"], r["metric"]) in columns]
    agg = seeds.aggregate(chosen)
    names = []
    for dataset, split, metric in columns:
        name = short_dataset(dataset)
        if evaluation == "chexpert" and split:
            name += "@" + split.rsplit("->", 1)[-1]
        if sum(1 for d, _, _ in columns if d == dataset) > 1 and "@" not in name:
            name += f"/{metric}"
        names.append(name)
    return DetailTable(
        evaluation,
        _configurations(chosen),
        columns,
        names,
        agg,
        seeds.differences(agg),
    )


def metric_scale(metric):
    """Returns (scale, digits) of a metric's display: percent for accuracies."""
    return (100.0, 1) if metric in ("accuracy", "top1", "auc_mean") else (1.0, 3)


def source_label(source):
    return "paper" if source.startswith("paper:") else source


def detail(rows, evaluation):
    """Returns (header, lines) of one evaluation: a line per configuration, a
    column per dataset (and setting) with its headline metric, significant
    differences from softmax marked with "*"."""
    table = detail_table(rows, evaluation)
    header = ["objective", "arch", "source", *table.names]
    lines = []
    for config in table.configs:
        source, arch, objective, _ = config
        cells = []
        for dataset, split, metric in table.columns:
            key = (config, (evaluation, dataset, split, metric))
            s = table.stats.get(key)
            if s is None:
                cells.append("")
                continue
            text = seeds.interval_text(s, *metric_scale(metric))
            if key in table.diffs and table.diffs[key].significant:
                text += "*"
            cells.append(text)
        lines.append([objective, arch, source_label(source)] + cells)
    return header, lines


def _is_pathology_auc(metric):
    return (
        metric.startswith("auc_")
        and metric != "auc_mean"
        and not metric.startswith("auc_exact")
        and "_ci_" not in metric
    )


def _with_chexpert_means(rows):
    """Adds an `auc_mean` row (the mean of the per-pathology AUCs) to every
    module, seed and setting that reports only per-pathology AUCs (the
    paper's rows)."""
    groups = {}
    for r in rows:
        key = (seeds.config_key(r), r.get("seed", ""), r.get("handle", ""), r["split"])
        groups.setdefault(key, []).append(r)
    out = list(rows)
    for group in groups.values():
        if any(r["metric"] == "auc_mean" for r in group):
            continue
        aucs = [float(r["value"]) for r in group if _is_pathology_auc(r["metric"])]
        if aucs:
            out.append(dict(group[0], metric="auc_mean", value=repr(_mean(aucs))))
    return out


def _headline(evaluation, metrics):
    """Returns the metric a detail column shows for one dataset and split."""
    for metric in ("accuracy", "top1", "auc_mean", "r2", "mean_corruption_error"):
        if metric in metrics:
            return metric
    if evaluation == "chexpert":
        return None  # per-pathology AUCs only: the summary averages them
    return metrics[0]


def render(header, lines, numeric_from):
    """Returns a plain table: columns padded, numeric ones right-aligned."""
    table = [header, *lines]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]

    def fmt(cells):
        return " ".join(
            str(c).rjust(w) if i >= numeric_from else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = " ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *map(fmt, lines)])
