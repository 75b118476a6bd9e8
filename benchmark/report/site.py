"""The web leaderboard: `zoo-leaderboard --html=DIR` writes a static site that
works from file:// and from any static host (no server, no network, no
build step).

DIR holds:
  index.html           the page (benchmark/report/site_assets/, copied)
  site.js, site.css    its script and style
  data.js              the leaderboard as `window.LEADERBOARD = {...}` (a
                       script, not JSON: browsers refuse fetch() on file://)
  transfer_vs_r2.png   linear transfer accuracy vs class separation R^2
                       (benchmark/report/plot.py), when rows have both
  accuracy_vs_gmacs.png  linear transfer accuracy vs multiply-accumulates
                       per image, when measured rows carry both
  .zoo-leaderboard-site  marks DIR as a site this command wrote

The page has a tab per view: the summary (views.summary's columns) and one
per evaluation family present (views.detail_table's columns). Each cell is a
configuration's mean over seeds with its 95% t-interval and n, and a "*"
where Welch's test calls the difference from softmax significant. Rows
filter by source (measured / paper), arch and objective and sort by any
column; a click on a row shows its provenance: every seed's module handle
(linked when it is a URL or a Kaggle handle), sha256, code and TF version,
device, and the distinct protocols of its evaluations. CKA heatmaps come
from zoo-analyze output folders (`--html_analyses=DIR,...`, their cka.json).

Every string from the leaderboard reaches the page through textContent,
never as markup, so a submitted row cannot inject script. The site is built
in a temporary folder beside DIR and moved into place: a failed run leaves
DIR as it was. An existing DIR is replaced only when it is empty or holds
the marker.
"""

import datetime
import json
import math
import os
import shutil
import tempfile

from benchmark.report import views
from benchmark.report.analysis_plots import heatmap_pairs
from benchmark.results import leaderboard, names
from benchmark.stats import seeds
from zoo.files import swap_in_folder

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site_assets")
ASSET_FILES = ("index.html", "site.js", "site.css")
MARKER = ".zoo-leaderboard-site"
FIGURE = "transfer_vs_r2.png"
COST_FIGURE = "accuracy_vs_gmacs.png"
SUMMARY_LABELS = {column: label for column, (label, _) in names.SUMMARY.items()}
EVALUATION_TITLES = names.EVALUATIONS


class SiteError(ValueError):
    """A site that cannot be written (bad folder, unreadable analyses)."""


def _number(x):
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _cell(stats, scale, difference=None):
    cell = {
        "mean": _number(stats.mean * scale),
        "n": stats.n,
        "half": None,
        "std": None,
        "values": [_number(v * scale) for v in stats.values],
        "seeds": list(stats.seeds),
    }
    if stats.n > 1:
        cell["half"] = _number((stats.high - stats.mean) * scale)
        cell["std"] = _number(stats.std * scale)
    if difference is not None:
        cell["delta"] = _number(difference.delta * scale)
        cell["p"] = _number(difference.p_value)
        cell["significant"] = bool(difference.significant)
    return cell


def _config_id(config):
    return "|".join(config)


def _baseline(config):
    i = seeds.CONFIG_COLUMNS.index("objective")
    return config[:i] + (seeds.BASELINE_OBJECTIVE,) + config[i + 1 :]


def summary_tab(rows):
    """Returns the summary tab: views.summary's columns, Welch-tested
    against softmax of the same source, arch and pretraining data."""
    _, _, stats = views.summary(rows)
    cells = {}
    for (config, column), s in stats.items():
        scale = 100.0 if column in views.PERCENT else 1.0
        difference = None
        base = stats.get((_baseline(config), column))
        if base is not None and config != _baseline(config):
            p = seeds.welch(s, base)
            difference = seeds.Difference(
                s.mean - base.mean, p, p is not None and p < seeds.ALPHA
            )
        cells.setdefault(_config_id(config), {})[column] = _cell(s, scale, difference)
    groups = {
        c: views.protocol_groups(
            rows, lambda r, c=c: r["evaluation"] in views.COLUMN_EVALUATIONS[c]
        )
        for c in views.SUMMARY_COLUMNS
    }
    columns = [
        {
            "key": c,
            "label": SUMMARY_LABELS[c],
            "digits": 1 if c in views.PERCENT else 3,
            "unit": "%" if c in views.PERCENT else "",
        }
        for c in views.SUMMARY_COLUMNS
        if any(c in by for by in cells.values())
    ]
    return {
        "name": "summary",
        "title": "Summary",
        "columns": columns,
        "cells": cells,
        **_group_fields(groups),
    }


def _group_fields(groups):
    """Returns the tab's "groups" ({column: {config id: label}}) and
    "reasons" ({column: {label: text}}) of columns whose rows fall in more
    than one protocol group; the page ranks within a group only."""
    fields = {"groups": {}, "reasons": {}}
    for column, found in groups.items():
        if len(found) < 2:
            continue
        fields["groups"][column] = {
            _config_id(c): g.label for g in found for c in g.configs
        }
        fields["reasons"][column] = {
            g.label: (g.reason or "the most configurations")
            + f" · fingerprints {', '.join(g.fingerprints[:3])}"
            for g in found
        }
    return fields


def ranks_tab(rows):
    """Returns the Ranks tab (views.rank_summary): each configuration's mean
    rank with its bootstrap interval and its tier, ranked within protocol
    groups; None when fewer than two configurations share a dataset."""
    try:
        _, lines, groups = views.rank_summary(rows)
    except ValueError:
        return None
    if not lines:
        return None
    by_name = {}
    everyone = [c for g in groups for c in g.configs]
    for g in groups:
        for c in g.configs:
            by_name[(g.label, views.display_name(c, everyone), c[1],
                     views.source_label(c[0]))] = c  # fmt: skip
    cells, tiers = {}, {}
    for line in lines:
        config = by_name[(line[0], line[4], line[5], line[6])]
        low, high = (float(v) for v in line[3].strip("[]").split(","))
        cell = {"mean": float(line[2]), "n": int(line[-1]), "half": None,
                "std": None, "values": [], "seeds": [], "low": low, "high": high,
                "tier": int(line[1])}  # fmt: skip
        cells[_config_id(config)] = {"mean_rank": cell}
        tiers[_config_id(config)] = f"{line[0]}{int(line[1]):03d}"  # sorts
    columns = [{"key": "mean_rank", "label": "mean rank", "digits": 2, "unit": "",
                "lower_is_better": True}]  # fmt: skip
    return {
        "name": "ranks",
        "title": "Ranks",
        "columns": columns,
        "cells": cells,
        "groups": {"mean_rank": tiers},
        "reasons": {
            "mean_rank": {
                t: f"tier {int(t[1:])} of protocol group {t[0]}: tied within"
                for t in set(tiers.values())
            }
        },
    }


MODEL_LABELS = {
    "params": ("params (M)", 1e-6, 2),
    "gmacs": ("GMACs", 1.0, 3),
    "images_per_s": ("images/s", 1.0, 0),
    "feature_dim": ("dim", 1.0, 0),
    "image_size": ("px", 1.0, 0),
    "module_mb": ("MB", 1.0, 1),
}


def models_tab(rows):
    """Returns the Models tab: each configuration's model metadata
    (benchmark.modules.cost) over its seeds' modules; None when no row has
    any."""
    cells = {}
    for config in views.configurations(rows):
        mine = [r for r in rows if seeds.config_key(r) == config]
        for column, (_, scale, _) in MODEL_LABELS.items():
            by_seed = {}
            for r in mine:
                if r.get(column) not in ("", None):
                    by_seed.setdefault(r.get("seed", ""), float(r[column]))
            if by_seed:
                order = sorted(by_seed, key=seeds.seed_order)
                s = seeds.seed_stats([by_seed[k] for k in order], order)
                cells.setdefault(_config_id(config), {})[column] = _cell(s, scale)
    if not cells:
        return None
    columns = [
        {"key": c, "label": label, "digits": digits, "unit": "",
         "lower_is_better": c in ("params", "gmacs", "module_mb")}
        for c, (label, _, digits) in MODEL_LABELS.items()
        if any(c in by for by in cells.values())
    ]  # fmt: skip
    return {"name": "models", "title": "Models", "columns": columns, "cells": cells}


def evaluation_tab(rows, evaluation):
    """Returns one evaluation family's tab: a column per dataset (setting)."""
    table = views.detail_table(rows, evaluation)
    columns, cells, groups = [], {}, {}
    for i, ((dataset, split, metric), name) in enumerate(
        zip(table.columns, table.names)
    ):
        scale, digits = views.metric_scale(metric)
        key = f"c{i}"
        columns.append(
            {
                "key": key,
                "label": name,
                "title": f"{dataset} · {split or 'no split'} · {metric}",
                "digits": digits,
                "unit": "%" if scale == 100.0 else "",
                "lower_is_better": metric == "mean_corruption_error",
            }
        )
        result = (evaluation, dataset, split, metric)
        groups[key] = views.protocol_groups(
            rows,
            lambda r, result=result: (
                (r["evaluation"], r["dataset"], r["split"], r["metric"]) == result
            ),
        )
        for config in table.configs:
            s = table.stats.get((config, result))
            if s is not None:
                cells.setdefault(_config_id(config), {})[key] = _cell(
                    s, scale, table.diffs.get((config, result))
                )
    return {
        "name": evaluation,
        "title": EVALUATION_TITLES.get(evaluation, evaluation),
        "columns": columns,
        "cells": cells,
        **_group_fields(groups),
    }


def handle_link(handle):
    """Returns a URL for a module handle, or None for a local path."""
    from export import fetch

    if handle.startswith("kaggle:"):
        return "https://www.kaggle.com/models/" + handle[len("kaggle:") :].strip("/")
    if handle.startswith(("https://", "http://")) or fetch.is_kaggle_handle(handle):
        return handle
    return None


def provenance(rows, config):
    """Returns one configuration's provenance: its modules (one per seed and
    handle) and the distinct protocols of each evaluation."""
    mine = [r for r in rows if seeds.config_key(r) == config]
    modules, seen, protocols = [], set(), {}
    for r in sorted(mine, key=lambda r: seeds.seed_order(r.get("seed", ""))):
        key = (r.get("seed", ""), r.get("handle", ""), r.get("module_sha256", ""))
        if key not in seen:
            seen.add(key)
            modules.append(
                {
                    "seed": r.get("seed", ""),
                    "handle": r.get("handle", ""),
                    "url": handle_link(r.get("handle", "")),
                    "sha256": r.get("module_sha256", ""),
                    "code_version": r.get("code_version", ""),
                    "tf_version": r.get("tf_version", ""),
                    "device": r.get("device", ""),
                    "sandbox": r.get("sandbox", ""),
                }
            )
        listed = protocols.setdefault(r["evaluation"], [])
        if r.get("protocol") and r["protocol"] not in listed:
            listed.append(r["protocol"])
    source = config[seeds.CONFIG_COLUMNS.index("source")]
    return {
        "citation": source[len(leaderboard.PAPER_PREFIX) :]
        if source.startswith(leaderboard.PAPER_PREFIX)
        else "",
        "modules": modules,
        "protocols": protocols,
    }


def cka_heatmaps(folders):
    """Returns the CKA heatmaps of zoo-analyze output folders: one per pair
    of distinct modules in each folder's cka.json."""
    maps = []
    for folder in folders:
        path = os.path.join(folder, "cka.json")
        if not os.path.isfile(path):
            raise SiteError(
                f"--html_analyses: {folder} has no cka.json; give a zoo-analyze "
                "--out folder that ran the cka analysis"
            )
        try:
            with open(path) as f:
                data = json.load(f)
            for pair in heatmap_pairs(data["pairs"]):
                maps.append(
                    {
                        "folder": os.path.basename(os.path.normpath(folder)),
                        "a": pair["a"],
                        "b": pair["b"],
                        "layers_a": list(pair["layers_a"]),
                        "layers_b": list(pair["layers_b"]),
                        "matrix": [
                            [_number(v) for v in line] for line in pair["matrix"]
                        ],
                    }
                )
        except (ValueError, KeyError, TypeError) as e:
            raise SiteError(
                f"--html_analyses: {path} is not a zoo-analyze cka.json ({e}); "
                "rerun zoo-analyze"
            ) from None
    return maps


def site_data(
    rows, *, heatmaps=(), figure=None, rho=None, leaderboard_name="", cost_figure=None
):
    """Returns the JSON-able data the page renders."""
    configs = views.configurations(rows)
    tabs = [summary_tab(rows)]
    evaluations = []
    for r in rows:
        if r["evaluation"] not in evaluations:
            evaluations.append(r["evaluation"])
    for evaluation in evaluations:
        try:
            tab = evaluation_tab(rows, evaluation)
        except ValueError:
            continue  # no headline column (cannot happen for present rows)
        if tab["columns"]:
            tabs.append(tab)
    for extra in (ranks_tab(rows), models_tab(rows)):
        if extra:
            tabs.append(extra)
    return {
        "title": "Loss-transfer zoo leaderboard",
        "leaderboard": leaderboard_name,
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "test": seeds.TEST_NAME,
        "alpha": seeds.ALPHA,
        "baseline": seeds.BASELINE_OBJECTIVE,
        "configs": [
            {
                "id": _config_id(c),
                "source": views.source_label(c[0]),
                "arch": c[1],
                "objective": views.display_name(c, configs),
                "pretrain": c[seeds.CONFIG_COLUMNS.index("pretrain_dataset")],
                "provenance": provenance(rows, c),
            }
            for c in configs
        ],
        "tabs": tabs,
        "figure": figure,
        "cost_figure": cost_figure,
        "rho": rho,
        "heatmaps": list(heatmaps),
    }


def _script(data):
    text = json.dumps(data, sort_keys=True, allow_nan=False, ensure_ascii=True)
    # "</" would end an inline script; escaped it is the same JSON string.
    return "window.LEADERBOARD = " + text.replace("</", "<\\/") + ";\n"


def check_out(out):
    """Raises SiteError unless `out` may become (or be replaced by) a site."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise SiteError(f"--html={out} is a file; give a folder for the site")
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.exists(os.path.join(out, MARKER)):
            raise SiteError(
                f"--html={out} is a non-empty folder zoo-leaderboard did not "
                "write; give a new or empty folder"
            )
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise SiteError(f"--html={out}: folder {parent} does not exist; create it")


def write_site(rows, out, *, analyses=(), leaderboard_name=""):
    """Writes the site to folder `out` atomically; returns its data."""
    from benchmark.report import plot

    check_out(out)
    heatmaps = cka_heatmaps(analyses)
    parent = os.path.dirname(os.path.abspath(out))
    work = tempfile.mkdtemp(prefix=".site-", dir=parent)
    try:
        figure = rho = None
        points = plot.separation_points(rows)
        if any(points.values()):
            plot.plot_transfer_vs_separation(rows, os.path.join(work, FIGURE))
            figure = FIGURE
            rho = {}
            for kind, group in points.items():
                r = plot.rank_correlation(group)
                if r is not None:
                    rho[kind] = {
                        "rho": _number(r[0]),
                        "low": _number(r[1]),
                        "high": _number(r[2]),
                        "n": len(group),
                    }
        cost_figure = None
        if any(r.get("gmacs") for r in rows):
            try:
                plot.plot_accuracy_vs_macs(rows, os.path.join(work, COST_FIGURE))
                cost_figure = COST_FIGURE
            except ValueError:  # no configuration with a linear probe too
                pass
        data = site_data(
            rows,
            heatmaps=heatmaps,
            figure=figure,
            rho=rho,
            leaderboard_name=leaderboard_name,
            cost_figure=cost_figure,
        )
        with open(os.path.join(work, "data.js"), "w") as f:
            f.write(_script(data))
        for name in ASSET_FILES:
            shutil.copyfile(os.path.join(ASSETS, name), os.path.join(work, name))
        with open(os.path.join(work, MARKER), "w") as f:
            f.write("written by zoo-leaderboard --html; safe to replace\n")
        os.chmod(work, 0o755)
        swap_in_folder(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return data
