"""docs/reproduction.md from a study's results: does the instrument detect
the effects it exists to measure?

Reads WORKDIR/leaderboard.csv (benchmark and analysis rows of every module),
WORKDIR/analysis/seedN/cka.json and the runs' train_info.json, and writes a
markdown report with PNG figures beside it (OUT_DIR/reproduction/*.png).

Per (objective, seed) module: source top-1 (`imagenet_ood` top1 on the
pretraining data), class separation R^2 on the pretraining train split,
linear probe, kNN and fine-tuning accuracy on the transfer set, Chexpert
mean AUC, sparsity and NC1 of the feature vector. Per objective: mean ± std
over seeds. The four claims of Kornblith et al. (2021):

  (a) objectives that raise source accuracy over softmax also raise R^2:
      among objectives whose mean top-1 exceeds softmax's, the fraction whose
      mean R^2 does too; Spearman's rho of (Δ top-1, Δ R^2) over objectives.
  (b) Spearman's rho between R^2 and linear transfer accuracy over
      objectives (seed means) is negative; 95% interval from a bootstrap over
      seeds (each objective's seeds resampled with replacement).
  (c) fine-tuning shrinks the spread between objectives: the ratio of the
      standard deviations over objectives of fine-tuning and of linear-probe
      accuracy (seed means) is below 1; bootstrap over seeds.
  (d) same-layer CKA with the softmax module (same seed) is higher in the
      first third of the blocks than in the last third; the difference of
      the two means with a bootstrap over seeds.

A verdict is "reproduced" when the statistic has the paper's sign and its
95% interval excludes the null, "direction only" when only the sign agrees
(or there is one seed, so no interval), "not reproduced" otherwise, and
"not measured" without the numbers.

Command: zoo-reproduce --workdir=runs/mini_zoo --out=docs/reproduction.md
(pipeline/reproduction_main.py).
"""

import json
import math
import os
import statistics

import numpy as np

from benchmark.results import leaderboard
from benchmark.results import names as result_names
from benchmark.results.markdown import markdown_table
from benchmark.stats.metrics import percentile_interval, spearman_rho
from zoo.files import write_atomic

RESAMPLES = 2000
COLUMNS = (
    ("top1", "source top-1", 100.0),
    ("r2", "R²", 1.0),
    ("linear_probe", result_names.label("linear_probe"), 100.0),
    ("knn", result_names.label("knn"), 100.0),
    ("fine_tune", result_names.label("fine_tune"), 100.0),
    ("chexpert", "Chexpert AUC", 100.0),
    ("sparsity", "non-zero", 1.0),
    ("nc1", "NC1", 1.0),
)


class ReportError(ValueError):
    """A study without the results a report needs."""


def _config_of(row):
    """Returns the benchmark config named in a row's protocol ("" if none)."""
    try:
        protocol = json.loads(row.get("protocol") or "{}")
    except json.JSONDecodeError:
        return ""
    return protocol.get("config", "") if isinstance(protocol, dict) else ""


def module_values(rows, source, transfer, main_config=None, names=None):
    """Returns {(label, seed): {column: value}} from a study's rows: label is
    the cell label of the row's module when `names` ({run name: (label,
    seed)}) knows its folder's name, else the row's objective.

    Transfer rows of the benchmark config `main_config` (None: any) fill
    linear_probe, knn and fine_tune; those of another config fill
    "linear_probe@CONFIG", and few-shot rows fill "shotK" (their mean over
    draws) from whichever config measured them."""
    out = {}

    names = names or {}

    def put(row, column):
        run = os.path.basename(str(row.get("handle") or "").rstrip("/"))
        label = names[run][0] if run in names else row["objective"]
        key = (label, row["seed"])
        out.setdefault(key, {})[column] = float(row["value"])

    for r in rows:
        if r["source"] != leaderboard.MEASURED:
            continue
        e, m, d = r["evaluation"], r["metric"], r["dataset"]
        config = _config_of(r)
        main = main_config is None or config in ("", main_config)
        if e == "imagenet_ood" and m == "top1" and d == source:
            put(r, "top1")
        elif e == "class_separation" and m == "r2" and d == source:
            put(r, "r2")
        elif e in ("linear_probe", "knn", "fine_tune") and m == "accuracy":
            if d == transfer:
                put(r, e if main else f"{e}@{config}")
        elif e == "few_shot" and d == transfer:
            shots = m.removesuffix("shot_accuracy")
            if shots.isdigit():
                put(r, f"shot{shots}")
        elif e == "chexpert" and m == "auc_mean" and r["split"].endswith("valid"):
            put(r, "chexpert")
        elif e == "sparsity" and m == "nonzero_fraction":
            put(r, "sparsity")
        elif e == "neural_collapse" and m == "nc1":
            put(r, "nc1")
    return out


def _columns(values):
    """Returns the set of columns any module of `values` has."""
    return {c for v in values.values() for c in v}


def few_shot_columns(values):
    """Returns [(column, label)] of the few-shot and further-config transfer
    columns `values` holds: other configs' linear probes, then k-shot by k."""
    present = _columns(values)
    probes = sorted(c for c in present if c.startswith("linear_probe@"))
    shots = sorted(
        (c for c in present if c.startswith("shot")), key=lambda c: int(c[4:])
    )
    return [(c, "linear, " + c.split("@", 1)[1]) for c in probes] + [
        (c, f"{c[4:]}-shot") for c in shots
    ]


def rank_correlation(values, objectives, x, y):
    """Returns Spearman's ρ between columns x and y over objectives (seed
    means) with its bootstrap interval over seeds, or {"n": used} when fewer
    than 3 objectives have both."""
    pairs = _paired(values, objectives, x, y)
    used = [o for o in objectives if pairs[o]]
    if len(used) < 3:
        return {"n": len(used)}

    def rho_of(pick):
        return spearman_rho(*_means(pairs, used, pick))

    rho = rho_of({o: range(len(pairs[o])) for o in used})
    low, high = _bootstrap(rho_of, {o: pairs[o] for o in used})
    return {"rho": rho, "low": low, "high": high, "n": len(used)}


def by_objective(values, objectives, column):
    """Returns {objective: [value per seed, in seed order]} of one column."""
    out = {}
    for objective in objectives:
        seeds = sorted(
            (s for (o, s) in values if o == objective and column in values[o, s]),
            key=lambda s: (len(s), s),
        )
        out[objective] = [values[objective, s][column] for s in seeds]
    return out


def _mean(x):
    return statistics.fmean(x) if x else float("nan")


def _std(x):
    return statistics.stdev(x) if len(x) > 1 else float("nan")


def _bootstrap(statistic, groups, seed=0):
    """Returns (low, high), the 95% percentile interval of `statistic` over
    resamples of each objective's seed indices (with replacement)."""
    rng = np.random.default_rng(seed)
    sizes = {o: len(v) for o, v in groups.items()}
    if min(sizes.values(), default=0) < 2:
        return float("nan"), float("nan")  # one seed: nothing to resample
    draws = []
    for _ in range(RESAMPLES):
        pick = {o: rng.integers(0, n, n) for o, n in sizes.items() if n}
        draws.append(statistic(pick))
    return percentile_interval(draws, 0.95)


def _verdict(value, low, high, sign, null):
    """Returns the verdict of a statistic expected on side `sign` (+1 above,
    -1 below) of `null`, with its interval (nan: no interval, one seed)."""
    if math.isnan(value):
        return "not measured"
    agrees = sign * (value - null) > 0
    near = low if sign > 0 else high  # the interval's end nearest the null
    if agrees and not math.isnan(near) and sign * (near - null) > 0:
        return "reproduced"
    return "direction only" if agrees else "not reproduced"


def _paired(values, objectives, a, b):
    """Returns {objective: [(a, b) per seed]} of seeds that have both."""
    out = {}
    for o in objectives:
        seeds = sorted(
            (s for (oo, s) in values if oo == o and {a, b} <= set(values[oo, s])),
            key=lambda s: (len(s), s),
        )
        out[o] = [(values[o, s][a], values[o, s][b]) for s in seeds]
    return out


def claim_a(values, objectives, reference):
    top1 = by_objective(values, objectives, "top1")
    r2 = by_objective(values, objectives, "r2")
    others = [o for o in objectives if o != reference and top1[o] and r2[o]]
    if not top1.get(reference) or not r2.get(reference) or not others:
        return {"verdict": "not measured"}
    d_acc = {o: _mean(top1[o]) - _mean(top1[reference]) for o in others}
    d_r2 = {o: _mean(r2[o]) - _mean(r2[reference]) for o in others}
    better = [o for o in others if d_acc[o] > 0]
    both = [o for o in better if d_r2[o] > 0]
    rho = spearman_rho([d_acc[o] for o in others], [d_r2[o] for o in others])
    groups = {o: list(range(len(top1[o]))) for o in [reference, *others]}

    def statistic(pick):
        base_a = _mean([top1[reference][i] for i in pick[reference]])
        base_r = _mean([r2[reference][i] for i in pick[reference]])
        xs = [_mean([top1[o][i] for i in pick[o]]) - base_a for o in others]
        ys = [_mean([r2[o][i % len(r2[o])] for i in pick[o]]) - base_r for o in others]
        return spearman_rho(xs, ys)

    low, high = _bootstrap(statistic, groups)
    if not better:
        verdict = "not measured"
        note = "no objective beat softmax's source accuracy at this scale"
    else:
        share = len(both) / len(better)
        verdict = (
            "reproduced"
            if share == 1.0
            else ("direction only" if share > 0.5 else "not reproduced")
        )
        note = (
            f"{len(better)} of {len(others)} objectives above softmax in top-1, "
            f"{len(both)} of those also above in R²"
        )
    return {
        "verdict": verdict,
        "better": better,
        "both": both,
        "d_acc": d_acc,
        "d_r2": d_r2,
        "rho": rho,
        "low": low,
        "high": high,
        "note": note,
    }


def _means(pairs, used, pick):
    """Returns the per-objective means of both columns of `pairs` over the
    seed indices `pick[objective]`."""
    xs = [_mean([pairs[o][i][0] for i in pick[o]]) for o in used]
    ys = [_mean([pairs[o][i][1] for i in pick[o]]) for o in used]
    return xs, ys


def claim_b(values, objectives):
    claim = rank_correlation(values, objectives, "r2", "linear_probe")
    if "rho" not in claim:
        return {"verdict": "not measured"}
    return {
        "verdict": _verdict(claim["rho"], claim["low"], claim["high"], -1, 0.0),
        **claim,
    }


def claim_c(values, objectives):
    pairs = _paired(values, objectives, "linear_probe", "fine_tune")
    used = [o for o in objectives if pairs[o]]
    if len(used) < 3:
        return {"verdict": "not measured"}

    def spreads(pick):
        lp, ft = _means(pairs, used, pick)
        return statistics.stdev(lp), statistics.stdev(ft)

    lp, ft = spreads({o: range(len(pairs[o])) for o in used})

    def ratio(pick):
        a, b = spreads(pick)
        return b / a if a > 0 else float("nan")

    value = ft / lp if lp > 0 else float("nan")
    low, high = _bootstrap(ratio, {o: pairs[o] for o in used})
    return {
        "verdict": _verdict(value, low, high, -1, 1.0),
        "ratio": value,
        "low": low,
        "high": high,
        "lp_spread": lp,
        "ft_spread": ft,
        "n": len(used),
    }


def cka_by_layer(workdir, seeds, reference):
    """Returns (layers, {seed: {objective: [same-layer CKA with the
    reference, per layer]}}) from each seed's cka.json."""
    layers, out = None, {}
    for seed in seeds:
        path = os.path.join(workdir, "analysis", f"seed{seed}", "cka.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            data = json.load(f)
        ref = next(
            (k for p in data["pairs"] for k in (p["a"],) if f"_{reference}_" in k),
            None,
        )
        if ref is None:
            continue
        for pair in data["pairs"]:
            if pair["b"] != ref or pair["a"] == ref:
                continue
            objective = pair["a"].split("_", 1)[1].rsplit("_seed", 1)[0]
            names = [n for n in pair["layers_a"] if n in pair["same_layer"]]
            layers = layers or names
            out.setdefault(seed, {})[objective] = [
                pair["same_layer"][n] for n in layers if n in pair["same_layer"]
            ]
    return layers or [], out


def claim_d(layers, cka):
    if not cka or len(layers) < 3:
        return {"verdict": "not measured"}
    third = max(1, len(layers) // 3)
    seeds = sorted(cka)

    def gap_of(seed_list):
        per = [
            np.mean([v[:third] for v in cka[s].values()])
            - np.mean([v[-third:] for v in cka[s].values()])
            for s in seed_list
        ]
        return float(np.mean(per))

    value = gap_of(seeds)
    low = high = float("nan")
    if len(seeds) > 1:
        rng = np.random.default_rng(0)
        draws = [gap_of(list(rng.choice(seeds, len(seeds)))) for _ in range(RESAMPLES)]
        low, high = (float(np.quantile(draws, q)) for q in (0.025, 0.975))
    early = float(np.mean([v[:third] for s in seeds for v in cka[s].values()]))
    late = float(np.mean([v[-third:] for s in seeds for v in cka[s].values()]))
    return {
        "verdict": _verdict(value, low, high, +1, 0.0),
        "gap": value,
        "low": low,
        "high": high,
        "early": early,
        "late": late,
        "third": third,
        "layers": len(layers),
        "seeds": len(seeds),
    }


def _cell(values, scale):
    if not values:
        return "–"
    digits = 1 if scale == 100.0 else 3
    mean = _mean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f} (1)"
    return f"{mean:.{digits}f} ± {_std(values) * scale:.{digits}f} ({len(values)})"


def _seed_table(first, values, labels, shown):
    """Returns a markdown table: one row per label, one column per (column,
    header, scale) of `shown`, each cell the mean ± std over seeds (n)."""
    return markdown_table(
        [first, *(header for _, header, _ in shown)],
        [
            [x, *(_cell(by_objective(values, labels, c)[x], scale)
                  for c, _, scale in shown)]
            for x in labels
        ],
        numeric=range(1, 1 + len(shown)),
    )  # fmt: skip


def _scatter_r2(axes, r2, accuracy, labels):
    """Draws each label's seed mean of R² against accuracy (in %), with
    std bars when it has several seeds, and names the point."""
    for x in labels:
        if r2[x] and accuracy[x]:
            point = (_mean(r2[x]), 100 * _mean(accuracy[x]))
            axes.errorbar(
                *point,
                xerr=_std(r2[x]) if len(r2[x]) > 1 else None,
                yerr=100 * _std(accuracy[x]) if len(accuracy[x]) > 1 else None,
                fmt="o",
                capsize=2,
            )
            axes.annotate(x, point, fontsize=7)


def _figures(values, objectives, layers, cka, folder):
    from benchmark.report.plot import new_figure, save_figure

    os.makedirs(folder, exist_ok=True)
    written = []
    r2 = by_objective(values, objectives, "r2")
    lin = by_objective(values, objectives, "linear_probe")
    ft = by_objective(values, objectives, "fine_tune")
    figure = new_figure(figsize=(11, 4.5))
    left, right = figure.subplots(1, 2)
    _scatter_r2(left, r2, lin, objectives)
    left.set_xlabel("class separation R² (pretraining train set)")
    left.set_ylabel("linear probe accuracy on the transfer set (%)")
    left.set_title("(b) transfer vs class separation", fontsize=10)
    names = [o for o in objectives if lin[o] and ft[o]]
    x = np.arange(len(names))
    right.bar(x - 0.2, [100 * _mean(lin[o]) for o in names], 0.4, label="linear")
    right.bar(x + 0.2, [100 * _mean(ft[o]) for o in names], 0.4, label="fine-tune")
    right.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    right.set_ylabel("transfer accuracy (%)")
    right.set_title("(c) linear probe vs fine-tuning", fontsize=10)
    right.legend(fontsize=8)
    path = os.path.join(folder, "transfer.png")
    save_figure(figure, path)
    written.append(path)
    if cka:
        figure = new_figure(figsize=(9, 4.5))
        axes = figure.subplots()
        objectives_cka = sorted({o for s in cka.values() for o in s})
        for o in objectives_cka:
            curves = [cka[s][o] for s in cka if o in cka[s]]
            axes.plot(np.mean(curves, axis=0), marker="o", ms=3, label=o)
        axes.set_xticks(range(len(layers)), layers, rotation=90, fontsize=6)
        axes.set_ylabel("same-layer linear CKA with softmax")
        axes.set_ylim(0, 1.02)
        axes.set_title("(d) CKA with the softmax module, per block", fontsize=10)
        axes.legend(fontsize=6, ncol=2)
        axes.grid(alpha=0.3)
        path = os.path.join(folder, "cka.png")
        save_figure(figure, path)
        written.append(path)
    return written


def _timing(workdir):
    """Returns (training s, {benchmark config: s}, analysis s, device) from
    the files."""
    train = analysis = 0.0
    bench = {}
    device = ""
    for sub, kind in (("train", "train"), ("benchmark", "bench"), ("analysis", "an")):
        folder = os.path.join(workdir, sub)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if kind == "train":
                path = os.path.join(folder, name, "train_info.json")
                if os.path.isfile(path):
                    with open(path) as f:
                        info = json.load(f)
                    train += sum(h.get("seconds") or 0 for h in info["history"])
                    device = device or info.get("device", "")
            elif kind == "bench" and name.endswith(".json"):
                with open(os.path.join(folder, name)) as f:
                    done = json.load(f)
                config = done.get("config", "")
                bench[config] = bench.get(config, 0.0) + done["seconds"]
            elif kind == "an":
                path = os.path.join(folder, name, "done.json")
                if os.path.isfile(path):
                    with open(path) as f:
                        analysis += json.load(f)["seconds"]
    return train, bench, analysis, device


def paper_points(rows, pattern, transfer):
    """Returns {objective: (R², linear accuracy on `transfer`)} of the
    paper's rows whose objective fully matches the regular expression
    `pattern` (rows without both numbers are left out)."""
    import re

    found = {}
    for r in rows:
        if not r["source"].startswith("paper:"):
            continue
        if not re.fullmatch(pattern, r["objective"]):
            continue
        point = found.setdefault(r["objective"], {})
        if r["evaluation"] == "class_separation" and r["metric"] == "r2":
            point["r2"] = float(r["value"])
        elif (r["evaluation"], r["metric"], r["dataset"]) == (
            "linear_probe",
            "accuracy",
            transfer,
        ):
            point["linear"] = float(r["value"])
    return {
        o: (p["r2"], p["linear"])
        for o, p in found.items()
        if {"r2", "linear"} <= set(p)
    }


def transfer_columns(values):
    """Returns [(column, label)] of the linear and kNN transfer columns
    `values` holds: the main config's, then each further config's."""
    present = _columns(values)
    out = []
    for base, label in (("linear_probe", "linear"), ("knn", "kNN")):
        if base in present:
            out.append((base, label))
        for c in sorted(x for x in present if x.startswith(base + "@")):
            out.append((c, f"{label}, {c.split('@', 1)[1]}"))
    return out


def arm_result(values, labels, columns):
    """Returns one arm's statistics: per transfer column, ρ(R², transfer)
    over `labels` with its interval and verdict (claim (b)'s rule), and the
    between-seed std of each column, averaged over labels."""
    out = {"correlations": {}, "seed_std": {}}
    for column, _ in columns:
        r = rank_correlation(values, labels, "r2", column)
        if "rho" in r:
            r["verdict"] = _verdict(r["rho"], r["low"], r["high"], -1, 0.0)
        else:
            r["verdict"] = "not measured"
        out["correlations"][column] = r
        stds = [
            _std(v) for v in by_objective(values, labels, column).values() if len(v) > 1
        ]
        out["seed_std"][column] = _mean(stds) if stds else float("nan")
    return out


def write_report(matrix, out, paper_leaderboard=None):
    """Writes the report of study `matrix` to `out`; returns the claims.
    `paper_leaderboard`: a leaderboard with the paper's rows, drawn beside
    each arm that names them."""
    rows = leaderboard.read_rows(matrix.leaderboard)
    if not rows:
        raise ReportError(
            f"{matrix.leaderboard} has no rows; run zoo-matrix --config=... first"
        )
    from benchmark.data.transfer import load_benchmark_dataset

    source = load_benchmark_dataset(matrix.source_dataset()).name
    transfer = load_benchmark_dataset(matrix.transfer).name
    from pipeline.study import benchmark_configs

    main = benchmark_configs(matrix)[0][0] if matrix.benchmark else None
    values = module_values(rows, source, transfer, main, matrix.run_labels())
    objectives = list(matrix.objectives)
    reference = matrix.reference
    layers, cka = cka_by_layer(matrix.workdir, matrix.seeds, reference)
    claims = {
        "a": claim_a(values, objectives, reference),
        "b": claim_b(values, objectives),
        "c": claim_c(values, objectives),
        "d": claim_d(layers, cka),
    }
    folder = os.path.join(os.path.dirname(os.path.abspath(out)), "reproduction")
    figures = _figures(values, objectives, layers, cka, folder)
    paper = leaderboard.read_rows(paper_leaderboard) if paper_leaderboard else []
    from benchmark.report.views import short_dataset

    # Published by name (cifar10), never by the local path of its folder;
    # the name is also how the paper's rows call the transfer set.
    arms = _arm_sections(matrix, values, paper, short_dataset(transfer), folder, out)
    text = _markdown(matrix, values, objectives, claims, figures, out, arms)
    write_atomic(out, text)
    return claims


def _sizes(matrix):
    """Returns the study's overrides for display; datasets by their short name
    (a report is published, the local paths of its data are not)."""
    from benchmark.report.views import short_dataset

    shown = []
    for key, value in sorted(matrix.overrides.items()):
        if key == "dataset":
            value = short_dataset(f"imagefolder:{value}" if "/" in value else value)
        shown.append(f"{key}={value}")
    return ", ".join(shown)


def _interval_text(claim, interval):
    if "low" not in claim or math.isnan(claim["low"]):
        return "none (one seed)"
    return interval()


def _rho_interval(r):
    """Returns the interval text of a rank_correlation result."""
    return _interval_text(r, lambda: f"[{_fmt(r['low'])}, {_fmt(r['high'])}]")


def _fmt(x, digits=3):
    return "nan" if x is None or math.isnan(x) else f"{x:+.{digits}f}"


def _minutes(by_config):
    """Returns "N min", or "N min (A: a, B: b)" for several configs."""
    total = f"{sum(by_config.values()) / 60:.0f} min"
    if len(by_config) < 2:
        return total
    parts = ", ".join(f"{c or 'unnamed'} {s / 60:.0f}" for c, s in by_config.items())
    return f"{total} ({parts})"


def _arm_sections(matrix, values, paper, transfer, folder, out):
    """Returns the lines of one section per arm of the matrix: its table,
    ρ(R², transfer) per transfer column with intervals and verdicts, the
    seed std of each column, and a figure of R² against linear transfer
    with seed error bars beside the paper's rows the arm names."""
    lines = []
    columns = transfer_columns(values)
    rel = os.path.dirname(os.path.abspath(out))
    for arm, spec in matrix.arms.items():
        labels = list(spec["labels"])
        measured = sum(1 for (label, _) in values if label in labels)
        lines += [
            f"## Arm: {arm}",
            "",
            f"{measured} of {len(labels) * len(matrix.seeds)} modules measured "
            f"({len(labels)} cells x {len(matrix.seeds)} seeds).",
            "",
        ]
        if not measured:
            lines += [
                "Not measured yet: rerun the zoo-matrix command to train and "
                "score its cells.",
                "",
            ]
            continue
        shown = [("r2", "R²", 1.0)] + [(c, label, 100.0) for c, label in columns]
        lines += [
            _seed_table("cell", values, labels, shown),
            "",
        ]
        result = arm_result(values, labels, columns)
        rows = []
        for column, label in columns:
            r = result["correlations"][column]
            if "rho" not in r:
                rows.append((label, "–", "–", r["verdict"], "–"))
                continue
            interval = _rho_interval(r)
            std = result["seed_std"][column]
            rows.append(
                (
                    label,
                    _fmt(r["rho"]),
                    interval,
                    r["verdict"],
                    "–" if math.isnan(std) else f"{100 * std:.2f}",
                )
            )
        lines += [
            markdown_table(
                (
                    "transfer",
                    "ρ(R², transfer)",
                    "95% interval",
                    "verdict",
                    "seed std (points)",
                ),
                rows,
            ),
            "",
            "Seed std: the standard deviation of a cell's accuracy over seeds, "
            "averaged over the arm's cells.",
            "",
        ]
        points = (
            paper_points(paper, spec["paper"], transfer) if spec.get("paper") else {}
        )
        lines += _arm_range(values, labels, points, result, columns)
        path = _arm_figure(arm, values, labels, points, transfer, folder)
        lines += [f"![{os.path.basename(path)}]({os.path.relpath(path, rel)})", ""]
        if spec.get("paper") and not points:
            lines += [
                f"The paper's rows for this arm have no R² and linear accuracy "
                f"on {transfer} to draw beside it.",
                "",
            ]
    return lines


def _arm_range(values, labels, points, result, columns):
    """Returns the lines that set the arm's R² range beside the paper's rows
    and state each verdict in words."""
    r2 = [_mean(v) for v in by_objective(values, labels, "r2").values() if v]
    if not r2:
        return []
    text = f"R² of this arm's cells (seed means) spans {min(r2):.3f}-{max(r2):.3f}"
    if points:
        theirs = [p[0] for p in points.values()]
        text += (
            f"; the paper's rows drawn beside it span {min(theirs):.3f}-"
            f"{max(theirs):.3f} on ImageNet"
        )
    verdicts = [
        f"{label} {result['correlations'][c]['verdict']}"
        for c, label in columns
        if "rho" in result["correlations"][c]
    ]
    if verdicts:
        text += ". Claim (b) within this arm: " + "; ".join(verdicts)
    return [text + ".", ""]


def _arm_figure(arm, values, labels, points, transfer, folder):
    """Draws R² against linear transfer per cell (seed means, std bars),
    and the paper's points in a second panel; returns the PNG's path."""
    from benchmark.report.plot import new_figure, save_figure

    os.makedirs(folder, exist_ok=True)
    figure = new_figure(figsize=(11 if points else 6, 4.5))
    axes = figure.subplots(1, 2 if points else 1)
    ours = axes[0] if points else axes
    r2 = by_objective(values, labels, "r2")
    _scatter_r2(ours, r2, by_objective(values, labels, "linear_probe"), labels)
    ours.set_xlabel("class separation R² (pretraining train set)")
    ours.set_ylabel(f"linear probe accuracy on {transfer} (%)")
    ours.set_title(f"{arm}: this study (mean ± std over seeds)", fontsize=10)
    if points:
        theirs = axes[1]
        for name, (r2_value, accuracy) in sorted(points.items()):
            theirs.plot(r2_value, 100 * accuracy, "s", color="tab:gray")
            theirs.annotate(name, (r2_value, 100 * accuracy), fontsize=7)
        theirs.set_xlabel("class separation R² (ImageNet train set)")
        theirs.set_ylabel(f"linear probe accuracy on {transfer} (%)")
        theirs.set_title("the paper's rows (Kornblith et al. 2021)", fontsize=10)
    path = os.path.join(folder, f"arm_{arm}.png")
    save_figure(figure, path)
    return path


def _markdown(matrix, values, objectives, claims, figures, out, arms=()):
    train, bench, analysis, device = _timing(matrix.workdir)
    n_modules = len({k for k in values if k[0] in objectives})
    lines = [
        "# Reproduction: the paper's findings on a mini-zoo",
        "",
        f"Written by `zoo-reproduce --workdir={matrix.workdir} --out={out}` "
        "from the results of "
        "`zoo-matrix --config=mini_zoo` (pipeline/configs/mini_zoo.py gives "
        "the full command and the sizes). Regenerate both with those commands.",
        "",
        f"{n_modules} of {len(objectives) * len(matrix.seeds)} modules measured "
        f"({len(objectives)} objectives x {len(matrix.seeds)} seeds); "
        f"{matrix.config} training config with " + _sizes(matrix) + ".",
        f"Device: {device or 'unknown'}. Time: training {train / 60:.0f} min "
        f"(epochs only), benchmark {_minutes(bench)}, analyses "
        f"{analysis / 60:.0f} min.",
        "",
        "## Results per objective (mean ± std over seeds, n)",
        "",
        _seed_table("objective", values, objectives, COLUMNS),
    ]
    lines += [
        "",
        "Accuracies and AUC in percent. Source top-1: the module's classifier on "
        "the pretraining data's validation split; R²: class separation of the "
        "penultimate features on its train split; linear, kNN, fine-tune: the "
        "transfer set; non-zero: fraction of non-zero feature activations; NC1: "
        "within- over between-class variability of the features.",
        "",
        "## The paper's claims",
        "",
    ]
    a, b, c, d = (claims[k] for k in "abcd")
    rows = [
        (
            "(a) higher source accuracy than softmax goes with higher R²",
            a,
            "note",
            lambda: f"{a['note']}; Spearman ρ(Δtop-1, ΔR²) {_fmt(a['rho'])}",
            lambda: f"ρ in [{_fmt(a['low'])}, {_fmt(a['high'])}]",
        ),
        (
            "(b) ρ(R², linear transfer) < 0 across objectives",
            b,
            "rho",
            lambda: f"ρ = {_fmt(b['rho'])} over {b['n']} objectives",
            lambda: f"[{_fmt(b['low'])}, {_fmt(b['high'])}]",
        ),
        (
            "(c) fine-tuning shrinks the spread between objectives",
            c,
            "ratio",
            lambda: (
                f"std over objectives: fine-tune {100 * c['ft_spread']:.2f} vs "
                f"linear {100 * c['lp_spread']:.2f} points; ratio {c['ratio']:.2f}"
            ),
            lambda: f"ratio in [{c['low']:.2f}, {c['high']:.2f}]",
        ),
        (
            "(d) CKA with softmax: high early, lower in the last blocks",
            d,
            "gap",
            lambda: (
                f"first {d['third']} of {d['layers']} layers {d['early']:.3f}, "
                f"last {d['third']} {d['late']:.3f}; gap {_fmt(d['gap'])}"
            ),
            lambda: f"gap in [{_fmt(d['low'])}, {_fmt(d['high'])}]",
        ),
    ]
    claim_rows = []
    for title, claim, needs, statistic, interval in rows:
        measured = needs in claim
        claim_rows.append(
            (
                title,
                statistic() if measured else "–",
                _interval_text(claim, interval) if measured else "–",
                claim["verdict"],
            )
        )
    lines.append(
        markdown_table(("claim", "statistic", "95% interval", "verdict"), claim_rows)
    )
    lines += [
        "",
        "Intervals: percentile bootstrap (2,000 resamples) over seeds, each "
        "objective's seeds drawn with replacement. Verdicts: *reproduced* when the "
        "statistic has the paper's sign and its interval excludes the null; "
        "*direction only* when only the sign agrees; *not reproduced* otherwise. "
        "Claim (a) is a statement about every objective, so its verdict is by "
        "count: *reproduced* when every objective above softmax in top-1 is also "
        "above it in R², *direction only* when most are, *not reproduced* "
        "otherwise; its ρ and interval say how closely the two gains go together.",
        "",
    ]
    if "d_acc" in a:
        lines += [
            "Differences from softmax (seed means): "
            + "; ".join(
                f"{o} top-1 {100 * a['d_acc'][o]:+.1f}, R² {a['d_r2'][o]:+.3f}"
                for o in a["d_acc"]
            )
            + ".",
            "",
        ]
    rel = os.path.dirname(os.path.abspath(out))
    for path in figures:
        lines += [f"![{os.path.basename(path)}]({os.path.relpath(path, rel)})", ""]
    lines += _few_shot_section(values, objectives)
    lines += _power_section(values, matrix.labels())
    lines += list(arms)
    lines += _modules_section(matrix)
    lines += (
        ["## Reading the outcome", ""]
        + _reading(claims, matrix, values, objectives)
        + [""]
    )
    return "\n".join(lines)


def _few_shot_section(values, objectives):
    """Returns the few-shot section's lines ([] without few-shot results):
    per objective the linear probes and k-shot accuracies, and each one's
    rank correlation with R² across objectives."""
    columns = few_shot_columns(values)
    if not columns:
        return []
    shown = [("r2", "R²", 1.0), ("linear_probe", "linear", 100.0)] + [
        (c, label, 100.0) for c, label in columns
    ]
    table = _seed_table("objective", values, objectives, shown)
    correlations = []
    for column, label in [("linear_probe", "linear")] + columns:
        r = rank_correlation(values, objectives, "r2", column)
        if "rho" not in r:
            correlations.append((label, "–", "–", str(r["n"])))
            continue
        interval = _rho_interval(r)
        correlations.append((label, _fmt(r["rho"]), interval, str(r["n"])))
    return [
        "## Few-shot transfer (mean ± std over seeds, n)",
        "",
        table,
        "",
        "linear: the main benchmark's linear probe; linear, CONFIG: the linear "
        "probe of that config (vtab1k: 1,000 training images, 800 / 200 to "
        "choose the L2 penalty, then a refit on all 1,000); k-shot: ridge "
        "regression on L2-normalised features from k training images per "
        "class, the penalty chosen on other training images, mean over seeded "
        "draws. Both vtab1k columns are tested on the transfer set's whole "
        "test split.",
        "",
        markdown_table(
            ("transfer", "ρ(R², transfer)", "95% interval", "objectives"),
            correlations,
        ),
        "",
        "Claim (b) predicts ρ < 0 in every column. If collapsed features "
        "carry less information per example, the effect should be sharpest "
        "with the fewest examples: the 1-shot column.",
        "",
    ]


def seed_spread(values, labels, config):
    """Returns {label: {column: std over seeds}} for the labels with at least
    two seeds measured under `config`, the linear probe and kNN of the main
    config and of `config` on the same seeds (a fair before / after)."""
    out = {}
    for label in labels:
        keys = [
            k
            for k, v in values.items()
            if k[0] == label and f"linear_probe@{config}" in v
        ]
        if len(keys) < 2:
            continue
        out[label] = {}
        for base in ("linear_probe", "knn"):
            for column in (base, f"{base}@{config}"):
                got = [values[k][column] for k in keys if column in values[k]]
                if len(got) == len(keys):
                    out[label][column] = _std(got)
        out[label]["seeds"] = len(keys)
    return out


def _power_section(values, labels, config="full_transfer"):
    """Returns the lines comparing the between-seed std of linear and kNN
    transfer at the main config's size with `config`'s (the whole transfer
    set), on the same seeds; [] when no cell has two seeds of it."""
    spread = seed_spread(values, labels, config)
    if not spread:
        return []
    columns = [
        ("linear_probe", "linear, main"),
        (f"linear_probe@{config}", f"linear, {config}"),
        ("knn", "kNN, main"),
        (f"knn@{config}", f"kNN, {config}"),
    ]

    def cell(x):
        return "–" if x is None or math.isnan(x) else f"{100 * x:.2f}"

    rows = [
        (label, str(v["seeds"]), *(cell(v.get(c)) for c, _ in columns))
        for label, v in spread.items()
    ]
    means = {
        c: _mean([v[c] for v in spread.values() if c in v])
        for c, _ in columns
        if any(c in v for v in spread.values())
    }
    rows.append(("mean", "", *(cell(means.get(c)) for c, _ in columns)))
    means_text = ", ".join(
        f"{label} {cell(means[c])}" for c, label in columns if c in means
    )
    return [
        "## Power: the whole transfer set (between-seed std, points)",
        "",
        markdown_table(("cell", "seeds", *(label for _, label in columns)), rows),
        "",
        f"The same seeds of each cell, scored with the main config (200 "
        f"training and 200 test images per class) and with {config} (every "
        f"training and test image). Mean std: {means_text}.",
        "",
    ]


def _folder_bytes(folder):
    """Returns the size in bytes of the files under `folder`."""
    return sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(folder)
        for f in files
    )


def _modules_section(matrix):
    """Returns the lines that list the study's modules (size, sha256) and
    their results bundles, with the commands that verify and merge them."""
    modules_dir = os.path.join(matrix.workdir, "modules")
    bundles_dir = os.path.join(matrix.workdir, "bundles")
    names = sorted(
        n
        for n in (os.listdir(modules_dir) if os.path.isdir(modules_dir) else ())
        if os.path.isfile(os.path.join(modules_dir, n, "saved_model.pb"))
    )
    if not names:
        return []
    sizes = {n: _folder_bytes(os.path.join(modules_dir, n)) for n in names}
    by_module = {}
    for b in sorted(os.listdir(bundles_dir) if os.path.isdir(bundles_dir) else ()):
        path = os.path.join(bundles_dir, b, "manifest.json")
        if os.path.isfile(path):
            with open(path) as f:
                manifest = json.load(f)
            name = os.path.basename(manifest["handle"].rstrip("/"))
            by_module.setdefault(name, []).append(manifest)
    rows = []
    for n in names:
        manifests = by_module.get(n, [])
        sha = manifests[0]["module_sha256"][:12] if manifests else "–"
        configs = ", ".join(
            os.path.basename(str(m["config"])).removesuffix(".py") for m in manifests
        )
        rows.append((n, f"{sizes[n] / 1e6:.1f}", sha, configs or "–"))
    total = sum(sizes.values())
    count = sum(len(v) for v in by_module.values())
    return [
        "## Modules and results bundles",
        "",
        f"{len(names)} modules, {total / 1e6:.0f} MB in all, are kept out of the "
        "repository: the zoo-matrix command above rebuilds them (a retrained "
        "module has another sha256, so its bundles are made again with it). "
        f"{count} results bundles, one per module and benchmark config, are in "
        f"{bundles_dir}; each verifies and merges like any submission "
        "(`--portable`: the curated board names the data by folder name and "
        "each module by its path in the checkout, never this machine's folders):",
        "",
        "```",
        f"zoo-leaderboard verify {bundles_dir}/NAME",
        f"zoo-leaderboard merge {bundles_dir}/* --leaderboard=leaderboard.csv "
        "--portable",
        "```",
        "",
        markdown_table(
            ("module", "MB", "sha256", "bundles (config)"), rows, numeric=(1,)
        ),
        "",
    ]


def _reading(claims, matrix, values, objectives):
    """Returns the report's reading of its claims: what each statistic says
    at this scale, in numbers (no verdict is explained away)."""
    held = [k for k, c in claims.items() if c["verdict"] == "reproduced"]
    lines = [
        f"{len(held)} of the 4 claims reproduced with 95% intervals excluding "
        f"the null ({', '.join(f'({k})' for k in held) or 'none'}). The study "
        "is the paper's design at a tiny fraction of its compute: "
        + _sizes(matrix)
        + f", {len(matrix.seeds)} seeds.",
        "",
    ]
    if any("low" in c and math.isnan(c["low"]) for c in claims.values()):
        lines += [
            "Some objectives have one measured seed, so those claims have no "
            "interval and are at most *direction only*; rerunning zoo-matrix "
            "finishes the remaining seeds.",
            "",
        ]
    a, b, c, d = (claims[k] for k in "abcd")
    if "better" in a:
        missed = [o for o in a["better"] if o not in a["both"]]
        lines.append(
            f"- (a) {a['note']}"
            + (f"; the exceptions: {', '.join(missed)}" if missed else "")
            + f". Across all objectives the two gains are ranked alike "
            f"(ρ {_fmt(a['rho'])}"
            + (
                ""
                if math.isnan(a["low"])
                else f", interval {_fmt(a['low'])} to {_fmt(a['high'])}"
            )
            + ")."
        )
    if "rho" in b:
        r2 = [_mean(v) for v in by_objective(values, objectives, "r2").values() if v]
        lines.append(
            f"- (b) ρ(R², linear) = {_fmt(b['rho'])}. R² spans only "
            f"{min(r2):.3f}-{max(r2):.3f} across objectives here, a narrower "
            "range than the paper's ImageNet models (their R² rows are in the "
            "repository's leaderboard.csv), so seed noise in linear transfer "
            "weighs more."
        )
    if "ratio" in c:
        lp = _mean(
            [
                _mean(v)
                for v in by_objective(values, objectives, "linear_probe").values()
                if v
            ]
        )
        ft = _mean(
            [
                _mean(v)
                for v in by_objective(values, objectives, "fine_tune").values()
                if v
            ]
        )
        lines.append(
            f"- (c) spread ratio fine-tune / linear {c['ratio']:.2f}; mean "
            f"accuracy linear {100 * lp:.1f}%, fine-tune {100 * ft:.1f}%. The "
            "fine-tuning budget is small, so the features move little."
        )
    if "gap" in d:
        lines.append(
            f"- (d) same-layer CKA with softmax {d['early']:.3f} in the first "
            f"{d['third']} blocks, {d['late']:.3f} in the last {d['third']}."
        )
    arms = _arms_reading(matrix, values)
    if arms:
        lines += ["", "The arms, claim (b) within each:", "", *arms]
    lines += [
        "",
        "The same command on a GPU or TPU with the full recipe (the config's "
        "docstring gives the flags) tests the claims at the paper's scale.",
    ]
    return lines


def _arms_reading(matrix, values):
    """Returns one line per measured arm except the objectives': its R² and
    source top-1 ranges, ρ(R², linear) on each linear column with its
    verdict, and, for cells that change only how long their objective
    trains, how far R² and linear transfer moved from that objective's own
    cell."""
    columns = [c for c in transfer_columns(values) if c[0].startswith("linear")]
    lines = []
    for arm, spec in matrix.arms.items():
        labels = [x for x in spec["labels"] if x in matrix.variants]
        if not labels or not any(label in labels for label, _ in values):
            continue
        cells = list(spec["labels"])
        r2 = [_mean(v) for v in by_objective(values, cells, "r2").values() if v]
        top1 = [_mean(v) for v in by_objective(values, cells, "top1").values() if v]
        text = f"- {arm}: R² {min(r2):.3f}-{max(r2):.3f}"
        if top1:
            text += f", source top-1 {100 * min(top1):.1f}-{100 * max(top1):.1f}%"
        result = arm_result(values, cells, columns)
        said = []
        for column, label in columns:
            r = result["correlations"][column]
            if "rho" in r:
                said.append(
                    f"ρ(R², {label}) {_fmt(r['rho'])} {_rho_interval(r)}, "
                    f"{r['verdict']}"
                )
        if said:
            text += "; " + "; ".join(said)
        moved = _length_moves(matrix, values, labels)
        if moved:
            text += "; against the same objectives' own cells " + ", ".join(moved)
        lines.append(text + ".")
    return lines


def _length_moves(matrix, values, labels):
    """Returns, per variant that changes only training length (epochs,
    images per class) of its objective at its defaults, how its seed means
    of R² and linear transfer moved from the objective's own cell."""
    out = []
    for label in labels:
        settings = matrix.variants[label]
        base = settings["objective"]
        if set(settings) - {"objective", "epochs", "max_per_class"}:
            continue
        if base not in matrix.objectives:
            continue
        pair = [by_objective(values, [x], c)[x] for x in (base, label)
                for c in ("r2", "linear_probe")]  # fmt: skip
        if not all(pair):
            continue
        r2_from, lin_from, r2_to, lin_to = (_mean(v) for v in pair)
        out.append(
            f"{base} R² {r2_from:.3f} -> {r2_to:.3f} and linear "
            f"{100 * lin_from:.1f} -> {100 * lin_to:.1f}"
        )
    return out
