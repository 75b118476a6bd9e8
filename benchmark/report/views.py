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

Only like is ranked with like: the configurations of a ranking are grouped
by the protocol fingerprints (benchmark.results.fingerprint) of the rows
behind the ranking column, and ranks restart in each group, shown apart
with what differs (`protocol_groups`). `zoo-leaderboard --strict` refuses a
ranking that spans more than one group.
"""

import json
import math
import typing

import numpy as np

from benchmark.results import fingerprint, names
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
    if kind in ("imagefolder", "chexpert"):
        leaf = rest.rstrip("/").rsplit("/", 1)[-1]
        return leaf if kind == "imagefolder" else f"chexpert:{leaf}"
    return name


def display_name(config, configs=()):
    """Returns the name a configuration is shown by: its rows' display name
    (--name), else its objective, else "-"; when another of `configs` would
    show the same (source, arch, name), what tells them apart (module
    options, benchmark config) is appended in brackets."""
    name = config[4].split("|", 1)[0] if len(config) > 4 else ""
    shown = name or config[2] or "-"
    twins = [
        c
        for c in configs
        if c != config and c[:2] == config[:2] and display_name(c) == shown
    ]
    if twins and len(config) > 4:
        mine = config[4].split("|")[1:]
        others = [t[4].split("|")[1:] for t in twins if len(t) > 4]
        # The parts some twin differs in; all parts if none is found.
        differ = [
            i
            for i, p in enumerate(mine)
            if any(i >= len(o) or o[i] != p for o in others)
        ]
        parts = [mine[i] for i in differ] if differ else mine
        parts = [p for p in parts if p not in ("", "null")]
        if parts:
            shown += f" [{' '.join(p.strip(chr(34)) for p in parts[:3])}]"
    return shown


def _configurations(rows):
    return list(dict.fromkeys(seeds.config_key(row) for row in rows))


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


class ProtocolGroup(typing.NamedTuple):
    """Configurations whose ranking rows share one set of fingerprints.

    Attributes:
      label: "A", "B", ... (A has the most configurations).
      configs: the configuration keys, first seen first.
      fingerprints: the sorted fingerprints of their rows.
      reason: what differs from group A ("" for A).
    """

    label: str
    configs: list
    fingerprints: tuple
    reason: str


# summary column -> the evaluations whose rows make it.
COLUMN_EVALUATIONS = {
    "top1": ("holdout", "imagenet_ood"),
    "r2": ("class_separation",),
    "chexpert": ("chexpert",),
    **{column: (column,) for column in names.TRANSFER},
}


def protocol_groups(rows, pick):
    """Returns the ProtocolGroups of the configurations of `rows`, grouped by
    the fingerprints of the rows `pick(row)` selects (those behind a
    ranking); configurations without such rows are in no group."""
    chosen = [r for r in rows if pick(r)]
    sets = {}
    for row in chosen:
        sets.setdefault(seeds.config_key(row), set()).add(fingerprint.of_row(row))
    by_set = {}
    for config, prints in sets.items():
        by_set.setdefault(tuple(sorted(prints)), []).append(config)
    ordered = sorted(by_set.items(), key=lambda item: -len(item[1]))
    groups = []
    for i, (prints, configs) in enumerate(ordered):
        label = chr(ord("A") + i) if i < 26 else f"G{i}"
        reason = "" if i == 0 else _difference(chosen, ordered[0][1], configs)
        groups.append(ProtocolGroup(label, configs, prints, reason))
    return groups


def _difference(rows, first, other):
    """Returns one phrase saying how the rows of configurations `other`
    were measured differently from those of `first`."""
    a = [r for r in rows if seeds.config_key(r) in first]
    b = [r for r in rows if seeds.config_key(r) in other]
    paper_a = all(r["source"].startswith("paper:") for r in a)
    paper_b = all(r["source"].startswith("paper:") for r in b)
    if paper_a != paper_b:
        return (
            "measured here (group A: reported in a paper, its protocol as written)"
            if paper_a
            else "reported in a paper, its protocol as written (group A: measured)"
        )
    data_a = sorted({short_dataset(r["dataset"]) for r in a})
    data_b = sorted({short_dataset(r["dataset"]) for r in b})
    if data_a != data_b:
        return f"datasets {', '.join(data_b)} (group A: {', '.join(data_a)})"
    for row in b:
        match = next((r for r in a if r["dataset"] == row["dataset"]), None)
        if match is None:
            continue
        changed = _changed_settings(match, row)
        if changed:
            return "settings " + "; ".join(changed[:3])
    return "dataset content, split or evaluator version"


def _changed_settings(a, b):
    """Returns "key: A's value -> B's value" for protocol settings that differ."""

    def settings(row):
        try:
            protocol = json.loads(row.get("protocol") or "{}")
        except json.JSONDecodeError:
            return {}
        protocol.pop("input", None)
        protocol.pop("config", None)
        flat = {}
        for key, value in protocol.items():
            if isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return flat

    x, y = settings(a), settings(b)
    return [
        f"{key}: {json.dumps(x.get(key))} -> {json.dumps(y.get(key))}"
        for key in sorted(set(x) | set(y))
        if x.get(key) != y.get(key)
    ]


def ranking_groups(rows, rank_by="linear_probe"):
    """Returns the ProtocolGroups of the summary ranked by `rank_by`."""
    evaluations = COLUMN_EVALUATIONS[RANK_COLUMNS[rank_by]]
    return protocol_groups(rows, lambda r: r["evaluation"] in evaluations)


def group_legend(groups):
    """Returns the lines that name each protocol group and its difference."""
    lines = []
    for g in groups:
        prints = ", ".join(g.fingerprints[:3]) + (
            " ..." if len(g.fingerprints) > 3 else ""
        )
        text = f"protocol {g.label}: {len(g.configs)} configurations ({prints})"
        lines.append(text + (f"; differs from A: {g.reason}" if g.reason else ""))
    return lines


MODEL_VIEW = (
    "params",
    "gmacs",
    "images_per_s",
    "feature_dim",
    "image_size",
    "module_mb",
)


def models(rows, sort_by="gmacs", rank_by="linear_probe"):
    """Returns (header, lines) of the model view: one line per measured
    configuration with its model metadata (benchmark.modules.cost; the
    median over its seeds' rows) and its `rank_by` summary value, sorted by
    `sort_by` (a MODEL_VIEW column or `rank_by`'s summary column)."""
    column = RANK_COLUMNS[rank_by]
    if sort_by not in (*MODEL_VIEW, column):
        raise ValueError(
            f"cannot sort the model view by '{sort_by}'; choose one of: "
            f"{', '.join((*MODEL_VIEW, column))}"
        )
    _, _, stats = summary(rows, rank_by)
    table = []
    for config in _configurations(rows):
        mine = [r for r in rows if seeds.config_key(r) == config]
        values = {c: _median([r.get(c, "") for r in mine]) for c in MODEL_VIEW}
        if all(v is None for v in values.values()):
            continue
        s = stats.get((config, column))
        values[column] = None if s is None else s.mean
        table.append((config, values))
    lower_first = sort_by in ("params", "gmacs", "module_mb")
    table.sort(
        key=lambda item: (
            item[1][sort_by] is None,
            (1 if lower_first else -1) * (item[1][sort_by] or 0.0),
        )
    )
    header = ["objective", "arch", "source", "params (M)", "GMACs", "images/s",
              "dim", "px", "MB", names.label(column)]  # fmt: skip
    lines = []
    everyone = [config for config, _ in table]
    for config, v in table:
        source, arch = config[:2]
        lines.append(
            [
                display_name(config, everyone),
                arch,
                source_label(source),
                _fmt(v["params"], 1e-6, 2),
                _fmt(v["gmacs"], 1, 3),
                _fmt(v["images_per_s"], 1, 0),
                _fmt(v["feature_dim"], 1, 0),
                _fmt(v["image_size"], 1, 0),
                _fmt(v["module_mb"], 1, 1),
                _fmt(v[column], 100.0 if column in PERCENT else 1.0, 1),
            ]
        )
    return header, lines


def _median(cells):
    values = sorted(float(c) for c in cells if c not in ("", None))
    return values[len(values) // 2] if values else None


def _fmt(value, scale, digits):
    return "" if value is None else f"{value * scale:.{digits}f}"


def summary(rows, rank_by="linear_probe"):
    """Returns (header, lines, stats) of the summary view, best first by the
    column of evaluation `rank_by` within each protocol group (a last
    column names the group when there is more than one). `stats` maps
    (config, column) to the SeedStats of that cell."""
    if rank_by not in RANK_COLUMNS:
        raise ValueError(
            f"cannot rank the summary by '{rank_by}'; choose one of: "
            f"{', '.join(RANK_COLUMNS)}"
        )
    rank_column = RANK_COLUMNS[rank_by]
    configs = _configurations(rows)
    by_config = {}  # each configuration's rows, so each is scanned once
    for row in rows:
        by_config.setdefault(seeds.config_key(row), []).append(row)
    stats = {}
    for config in configs:
        pretrain = config[seeds.CONFIG_COLUMNS.index("pretrain_dataset")]
        for column in SUMMARY_COLUMNS:
            per_seed = _per_seed(by_config[config], config, _pick(column, pretrain))
            if per_seed:
                order = sorted(per_seed, key=seeds.seed_order)
                stats[config, column] = seeds.seed_stats(
                    [per_seed[s] for s in order], order
                )

    groups = ranking_groups(rows, rank_by)
    group_of = {c: g.label for g in groups for c in g.configs}
    order = {g.label: i for i, g in enumerate(groups)}

    def key(config):  # every summary column is higher-is-better
        s = stats.get((config, rank_column))
        group = order.get(group_of.get(config), len(groups))
        return (s is None, group, 0.0 if s is None else -s.mean)

    ordered = sorted(configs, key=key)
    header = ["rank", "objective", "arch", "source", "seeds", *SUMMARY_COLUMNS]
    if len(groups) > 1:
        header.append("protocol")
    lines, previous, rank, start, current = [], None, 0, 0, None
    for i, config in enumerate(ordered):
        s = stats.get((config, rank_column))
        value = None if s is None else s.mean
        if group_of.get(config) != current:
            current, start, previous = group_of.get(config), i, None
        if value is None:
            shown = "-"
        else:
            if value != previous:
                rank = i - start + 1
            shown, previous = str(rank), value
        source, arch = config[:2]
        counts = {s.n for (c, _), s in stats.items() if c == config}
        lines.append(
            [
                shown,
                display_name(config, configs),
                arch,
                source_label(source),
                "/".join(str(n) for n in sorted(counts)) or "0",
                *[_cell(stats, config, column) for column in SUMMARY_COLUMNS],
                *([group_of.get(config, "-")] if len(groups) > 1 else []),
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
    if metric in ("accuracy", "top1", "auc_mean") or "shot_accuracy" in metric:
        return 100.0, 1
    return 1.0, 3


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
        source, arch = config[:2]
        objective = display_name(config, table.configs)
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


def clip_name(name, width=30):
    """Returns a display name cut to `width` characters for a terminal
    table, the bracketed part that tells twins apart kept whole:
    "hyperspherical_pro… [mini_zoo]"."""
    if len(name) <= width:
        return name
    base, sep, tail = name.partition(" [")
    tail = sep + tail
    keep = max(width - len(tail) - 1, 4)
    return base[:keep] + "…" + tail


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


# The families `rank_summary` ranks on, each a column of per-dataset means.
RANK_FAMILIES = (*names.TRANSFER, "few_shot")


def _family_metric(evaluation, metrics):
    """Returns the metric a family's task is ranked by: accuracy, or for
    few_shot the accuracy at the largest number of shots."""
    if evaluation != "few_shot":
        return "accuracy" if "accuracy" in metrics else None
    shots = [m for m in metrics if m.endswith("shot_accuracy")]
    return max(shots, key=lambda m: int(m[: -len("shot_accuracy")])) if shots else None


def rank_summary(rows, samples=None):
    """Returns (header, lines, groups) of the rank summary: per protocol
    group of the transfer families' rows, each configuration's mean rank
    over the datasets all of them have, its 95% bootstrap interval
    (resampling datasets and seeds, benchmark/stats/ranks.py), its tied
    group ("tier") and its mean over datasets of each family."""
    from benchmark.stats import ranks

    chosen = [r for r in rows if r["evaluation"] in RANK_FAMILIES]
    metrics = {}
    for r in chosen:
        metrics.setdefault((r["evaluation"], r["dataset"], r["split"]), set()).add(
            r["metric"]
        )
    tasks = {
        key: _family_metric(key[0], found)
        for key, found in metrics.items()
        if _family_metric(key[0], found)
    }
    picked = [
        r
        for r in chosen
        if tasks.get((r["evaluation"], r["dataset"], r["split"])) == r["metric"]
    ]
    if not picked:
        raise ValueError(
            f"no {', '.join(RANK_FAMILIES)} rows to rank; run zoo-benchmark first"
        )
    groups = protocol_groups(picked, lambda r: True)
    # Named against every group's configurations: one module under two
    # benchmark configs reads "softmax [mini_zoo]" and "softmax [vtab1k]".
    everyone = [c for g in groups for c in g.configs]
    header = ["protocol", "tier", "mean rank", "95% interval", "objective", "arch",
              "source", "seeds", *[names.EVALUATIONS.get(f, f) for f in RANK_FAMILIES],
              "datasets"]  # fmt: skip
    lines = []
    for group in groups:
        values = {}
        for r in picked:
            config = seeds.config_key(r)
            if config in group.configs:
                task = (r["evaluation"], r["dataset"], r["split"])
                values.setdefault(config, {}).setdefault(task, {})[
                    r.get("seed", "")
                ] = float(r["value"])
        as_lists = {
            c: {t: list(s.values()) for t, s in v.items()} for c, v in values.items()
        }
        if len(as_lists) < 2:
            continue
        kwargs = {} if samples is None else {"samples": samples}
        try:
            ranked = ranks.rank_models(as_lists, **kwargs)
        except ValueError:
            continue  # no task every configuration of this group has
        for s in ranked:
            config = s.model
            per_task = as_lists[config]
            family = []
            for f in RANK_FAMILIES:
                means = [np.mean(v) for t, v in per_task.items() if t[0] == f]
                family.append(f"{100 * np.mean(means):.1f}" if means else "")
            n_seeds = max(len(v) for v in per_task.values())
            lines.append(
                [group.label, str(s.group), f"{s.mean_rank:.2f}",
                 f"[{s.low:.2f}, {s.high:.2f}]",
                 display_name(config, everyone), config[1],
                 source_label(config[0]), str(n_seeds), *family, str(s.tasks)]
            )  # fmt: skip
    return header, lines, groups
