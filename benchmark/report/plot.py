"""Linear transfer accuracy against class separation R^2, measured and reported.

The paper's central plot (Kornblith et al. 2021, Fig. 3): objectives whose
penultimate classes are more separated (higher R^2, eq. 11) transfer worse by
linear probe. One point per module (leaderboard.MODULE_COLUMNS):
  x = R^2, the mean of the module's class_separation rows measured on its
      pretraining data (rows whose dataset starts with the module's
      pretrain_dataset, e.g. imagenet2012_train), or on all of its R^2 rows
      when it has none there;
  y = the mean linear_probe accuracy over the datasets the module has.
Rows measured here go in the left panel, rows reported in papers in the right.
"""

import os
import statistics
import typing

from benchmark.results.leaderboard import MEASURED, MODULE_COLUMNS
from zoo.files import atomic_path


class Point(typing.NamedTuple):
    """One module in the plot: `accuracy` is a fraction."""

    label: str
    arch: str
    r2: float
    accuracy: float
    r2_on: str = "pretraining"  # or "transfer": where the R^2 was measured


def separation_points(rows):
    """Returns {"measured": [Point], "reported": [Point]}, one Point per module
    having both a class_separation R^2 and a linear_probe accuracy; its label
    is the objective (the handle's base name when the objective is unknown)."""
    modules = {}
    for row in rows:
        modules.setdefault(tuple(row[c] for c in MODULE_COLUMNS), []).append(row)
    points = {"measured": [], "reported": []}
    for (source, handle, _, arch, objective), module_rows in modules.items():
        r2, r2_on = _module_r2(module_rows)
        accuracies = [
            float(r["value"])
            for r in module_rows
            if r["evaluation"] == "linear_probe" and r["metric"] == "accuracy"
        ]
        if r2 is None or not accuracies:
            continue
        label = objective or os.path.basename(handle)
        kind = "measured" if source == MEASURED else "reported"
        points[kind].append(Point(label, arch, r2, statistics.fmean(accuracies), r2_on))
    return points


def _module_r2(module_rows):
    """Returns (the mean R^2, "pretraining" or "transfer": the data it was
    measured on; see the module docstring), or (None, None)."""
    r2_rows = [
        r
        for r in module_rows
        if r["evaluation"] == "class_separation" and r["metric"] == "r2"
    ]
    on_pretraining = [
        r
        for r in r2_rows
        if r["pretrain_dataset"] and r["dataset"].startswith(r["pretrain_dataset"])
    ]
    chosen = on_pretraining or r2_rows
    if not chosen:
        return None, None
    where = "pretraining" if on_pretraining else "transfer"
    return statistics.fmean(float(r["value"]) for r in chosen), where


def r2_axis_label(points):
    """Returns the R^2 axis label saying which data the points' R^2 was
    measured on (hollow markers mark transfer data when both occur)."""
    where = {p.r2_on for p in points}
    if where == {"transfer"}:
        return "class separation R^2 (measured on transfer data)"
    if where == {"pretraining", "transfer"}:
        return "class separation R^2 (filled: pretraining data; hollow: transfer data)"
    return "class separation R^2 (pretraining data)"


def plot_transfer_vs_separation(rows, path):
    """Writes the two-panel PNG to `path` (atomically) and returns the points.

    Raises ValueError when matplotlib is missing or no module has both values.
    """
    points = separation_points(rows)
    if not points["measured"] and not points["reported"]:
        raise ValueError(
            "no module has both a class_separation R^2 and a linear_probe "
            "accuracy to plot; run zoo-benchmark with both evaluations"
        )
    check_plot_path(path)
    save_figure(_figure(points), path)
    return points


def save_figure(figure, path):
    """Writes a matplotlib Figure to the PNG `path` atomically (a temporary
    file beside it, renamed), into an existing folder only."""
    check_plot_path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)


def new_figure(**kwargs):
    """Returns a matplotlib Figure (no pyplot state), or a one-line error
    naming how to install matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError(
            "plotting needs matplotlib; install it with pip install matplotlib"
        ) from None
    return Figure(layout="constrained", **kwargs)


def rank_correlation(points):
    """Returns (rho, low, high) of Spearman's rho between R^2 and linear
    transfer accuracy over `points`, with its 95% bootstrap interval over
    modules; None for fewer than 3 points."""
    if len(points) < 3:
        return None
    from benchmark.stats.metrics import spearman_with_interval

    return spearman_with_interval([p.r2 for p in points], [p.accuracy for p in points])


def check_plot_path(path):
    """Returns the folder of the PNG `path` after checking it can be written
    there: the folder must exist (a typo never creates folders, at the root
    or anywhere) and `path` must not be a folder."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(
            f"cannot write the plot {path}: folder {directory} does not exist; "
            "create it first or pass --plot naming a file in an existing folder"
        )
    if os.path.isdir(path):
        raise ValueError(f"--plot={path} is a folder; pass a .png file name")
    return directory


def _figure(points):
    """Returns a matplotlib Figure with the measured and reported panels."""
    figure = new_figure(figsize=(12, 5))
    for axes, kind in zip(figure.subplots(1, 2), ("measured", "reported")):
        _panel(axes, points[kind], kind)
    return figure


def _panel(axes, points, kind):
    """Draws one scatter panel of (R^2, accuracy %) points with labels."""
    title = "measured here" if kind == "measured" else "reported in papers"
    rho = rank_correlation(points)
    if rho is not None:
        title += f"\nSpearman rho {rho[0]:+.2f} [95% CI {rho[1]:+.2f}, {rho[2]:+.2f}]"
    axes.set_title(f"{title} ({len(points)} modules)")
    axes.set_xlabel(r2_axis_label(points))
    axes.set_ylabel("linear transfer accuracy (%, mean over datasets)")
    axes.grid(alpha=0.3)
    if not points:
        axes.text(
            0.5, 0.5, "no modules", ha="center", va="center", transform=axes.transAxes
        )
        return
    for arch in sorted({p.arch for p in points}):
        group = [p for p in points if p.arch == arch]
        drawn = axes.scatter(
            [p.r2 for p in group],
            [100.0 * p.accuracy for p in group],
            s=25,
            label=arch or "unknown arch",
        )
        hollow = [p.r2_on == "transfer" for p in group]
        if any(hollow) and not all(hollow):
            colour = drawn.get_facecolor()[0]
            drawn.set_facecolors(["none" if h else colour for h in hollow])
            drawn.set_edgecolors([colour] * len(group))
    for p in points:
        axes.annotate(
            p.label,
            (p.r2, 100.0 * p.accuracy),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    axes.legend(fontsize=8)


def plot_accuracy_vs_macs(rows, path, rank_by="linear_probe"):
    """Writes the PNG of each configuration's `rank_by` summary value
    against its multiply-accumulates per image (log scale) to `path`;
    returns the number of configurations drawn. Raises ValueError when no
    configuration has both."""
    from benchmark.report import views
    from benchmark.results import names

    header, lines = views.models(rows, sort_by="gmacs", rank_by=rank_by)
    points = [
        (float(line[4]), float(line[-1]), line[0], line[1])
        for line in lines
        if line[4] and line[-1]
    ]
    if not points:
        raise ValueError(
            f"no configuration has both GMACs and a {rank_by} value to plot; "
            "rows measured by zoo-benchmark carry gmacs"
        )
    check_plot_path(path)
    figure = new_figure(figsize=(7, 5))
    axes = figure.subplots()
    column = views.RANK_COLUMNS[rank_by]
    for arch in sorted({p[3] for p in points}):
        group = [p for p in points if p[3] == arch]
        axes.scatter([p[0] for p in group], [p[1] for p in group], s=25, label=arch)
        for x, y, objective, _ in group:
            axes.annotate(objective, (x, y), fontsize=7, alpha=0.8)
    axes.set_xscale("log")
    axes.set_xlabel("multiply-accumulates per image (GMACs, at the scored size)")
    unit = " (%)" if column in views.PERCENT else ""
    axes.set_ylabel(f"{names.label(column)}{unit}: {header[-1]} summary value")
    axes.set_title(f"{names.label(column)} against compute ({len(points)} configs)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    save_figure(figure, path)
    return len(points)
