"""zoo-leaderboard: show a leaderboard CSV in the terminal (by default one
line per configuration with seed statistics: source top-1, mean linear, kNN
and fine-tuning transfer, R^2, Chexpert mean AUC; --evaluation=X for one
evaluation per dataset; --wide for every result as a markdown table) and,
with --plot, a PNG of linear transfer accuracy against class separation R^2
(measured and reported modules side by side); with --html=DIR, write the
web leaderboard instead: a static site (index.html) that works from file://
with a tab per evaluation family, sorting, filters, seed intervals, the
figures and per-row provenance; verify and merge results bundles.

Examples:
  zoo-leaderboard --leaderboard=leaderboard.csv --rank_by=linear_probe
  zoo-leaderboard --evaluation=linear_probe --plot=runs/transfer_vs_r2.png
  zoo-leaderboard --wide --rank_by=linear_probe --dataset=cifar10
  zoo-leaderboard --models --sort_by=images_per_s --plot_cost=runs/cost.png
  zoo-leaderboard --strict --source=measured
  zoo-leaderboard --summary    # mean ranks, bootstrap intervals, tied tiers
  zoo-leaderboard --html=runs/site --html_analyses=runs/analysis
  zoo-leaderboard verify BUNDLE [--rerun=none|sample|all]
  zoo-leaderboard merge BUNDLE [BUNDLE...] --leaderboard=leaderboard.csv [--portable]
verify exits 0 when the bundle holds, 1 when something was tampered with or
does not reproduce (one line per failing row, after a comparison table), 2
on bad input. merge appends every bundle's rows in one atomic write, or
nothing when a bundle fails its checks or a row's key already has another
value. Rankings restart in each protocol group (rows whose protocol
fingerprints agree); --strict exits 1 when a ranking would span groups.
"""

import os
import sys

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "leaderboard",
    None,
    "Leaderboard CSV to render (default: the curated leaderboard shipped with the "
    "package: the paper's rows and merged submissions).",
)
flags.DEFINE_string("rank_by", "linear_probe", "Evaluation whose value ranks rows.")
flags.DEFINE_string(
    "dataset", None, "--wide: rank by this dataset's value of --rank_by."
)
flags.DEFINE_string(
    "evaluation", None, "Show this evaluation's results per dataset (seed stats)."
)
flags.DEFINE_bool(
    "wide", False, "Every result as its own column (a wide markdown table)."
)
flags.DEFINE_enum(
    "source",
    "all",
    ["all", "measured", "reported"],
    "Rows measured here, reported in papers, or both.",
)
flags.DEFINE_string(
    "html",
    None,
    "Write the web leaderboard (a static site that works from file://) to this "
    "folder instead of printing.",
)
flags.DEFINE_list(
    "html_analyses",
    [],
    "--html: zoo-analyze --out folders whose CKA heatmaps the site shows.",
)
flags.DEFINE_string(
    "plot",
    None,
    "Also write linear transfer accuracy vs class separation R^2 to this PNG.",
)
flags.DEFINE_bool(
    "models",
    False,
    "One line per configuration with its model metadata: parameters, GMACs per "
    "image, images/s, feature dim, input px, MB on disk and the --rank_by value.",
)
flags.DEFINE_string(
    "sort_by",
    "gmacs",
    "--models: sort by params, gmacs, images_per_s, feature_dim, image_size, "
    "module_mb or the --rank_by column.",
)
flags.DEFINE_string(
    "plot_cost",
    None,
    "Also write the --rank_by accuracy against GMACs per image to this PNG.",
)
flags.DEFINE_bool(
    "summary",
    False,
    "Rank summary: per configuration its mean over datasets of each transfer "
    "family, its mean rank, a 95% bootstrap interval of that rank (datasets and "
    "seeds resampled) and its tier (models whose intervals overlap are tied).",
)
flags.DEFINE_bool(
    "strict",
    False,
    "Exit 1 when the ranking would put rows of different protocol fingerprints "
    "side by side (each group is listed); exit 0 when all share one.",
)


flags.DEFINE_enum(
    "rerun", "sample", ["none", "sample", "all"], "verify: evaluations to re-run."
)
flags.DEFINE_bool(
    "portable",
    False,
    "merge: keep no folder of this machine in the board: image folder and "
    "Chexpert specs become imagefolder:NAME / chexpert:NAME, a local module "
    "handle becomes relative to the board's folder (refused outside it).",
)
flags.DEFINE_string("verify", None, "Same as the verify command: the bundle to verify.")
flags.DEFINE_enum(
    "rerun_sandbox", "auto", ["auto", "require", "off"], "verify: --sandbox of re-runs."
)


def verify_main(paths):
    from benchmark.runner.submissions import verify

    if len(paths) != 1:
        raise ValueError(f"verify takes one bundle, got {len(paths)}")
    problems = verify(paths[0], rerun=FLAGS.rerun, sandbox=FLAGS.rerun_sandbox)
    for line in problems:
        print(f"FAIL: {line}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"{paths[0]}: verified")


def merge_main(paths):
    from benchmark.runner.submissions import MergeConflict, merge

    if not paths:
        raise ValueError("merge takes one or more bundles")
    if not FLAGS.leaderboard:
        raise ValueError(
            "merge needs --leaderboard=FILE.csv, the board the rows go into (in a "
            "checkout, the curated one is leaderboard.csv)"
        )
    try:
        count = merge(FLAGS.leaderboard, paths, portable=FLAGS.portable)
    except MergeConflict as e:
        for line in e.problems:
            print(f"FAIL: {line}", file=sys.stderr)
        sys.exit(1)
    print(f"{count} rows from {len(paths)} bundles merged into {FLAGS.leaderboard}")


def main(argv):
    args = argv[1:]
    if FLAGS.verify:
        return verify_main([FLAGS.verify])
    if args and args[0] in ("verify", "merge"):
        return (verify_main if args[0] == "verify" else merge_main)(args[1:])
    if args:
        raise ValueError(f"unknown command {args[0]!r}; use verify or merge")
    from benchmark.results import leaderboard

    if FLAGS.plot:
        from benchmark.report.plot import check_plot_path

        check_plot_path(FLAGS.plot)
    path = FLAGS.leaderboard or leaderboard.CURATED
    if not os.path.exists(path):
        raise ValueError(
            f"leaderboard {path} does not exist; pass --leaderboard naming a CSV "
            "(zoo-benchmark writes runs/leaderboard.csv), or omit it for the "
            "curated leaderboard"
        )
    rows = leaderboard.read_rows(path)
    if FLAGS.source == "measured":
        rows = [r for r in rows if r["source"] == "measured"]
    elif FLAGS.source == "reported":
        rows = [r for r in rows if r["source"] != "measured"]
    if not rows:
        which = "" if FLAGS.source == "all" else f" with --source={FLAGS.source}"
        raise ValueError(f"{path} has no rows{which} to show")
    from benchmark.report import views

    if FLAGS.strict:
        groups = views.ranking_groups(rows, FLAGS.rank_by)
        if len(groups) > 1:
            for line in views.group_legend(groups):
                print(f"FAIL: {line}", file=sys.stderr)
            print(
                f"error: the {FLAGS.rank_by} ranking spans {len(groups)} protocol "
                "fingerprints; rank one group (--source, or a leaderboard measured "
                "with one config) or drop --strict",
                file=sys.stderr,
            )
            sys.exit(1)
    if FLAGS.plot_cost:
        from benchmark.report.plot import check_plot_path

        check_plot_path(FLAGS.plot_cost)
    if FLAGS.html:
        from benchmark.report.site import write_site

        data = write_site(
            rows,
            FLAGS.html,
            analyses=FLAGS.html_analyses,
            leaderboard_name=os.path.basename(path),
        )
        print(
            f"site of {len(data['configs'])} configurations, {len(data['tabs'])} "
            f"tabs and {len(data['heatmaps'])} CKA heatmaps written to "
            f"{os.path.join(FLAGS.html, 'index.html')}"
        )
    elif FLAGS.summary:
        from benchmark.stats.ranks import SAMPLES

        header, lines, _ = views.rank_summary(rows)
        if not lines:
            raise ValueError(
                "no two configurations share a dataset of linear_probe, knn, "
                "fine_tune or few_shot; nothing to rank"
            )
        print(views.render(header, lines, numeric_from=1))
        print(
            "\ntier: configurations in one tier are tied (their 95% rank intervals "
            "overlap the tier's best); mean rank over the datasets every "
            f"configuration of the protocol group has; interval: {SAMPLES} "
            "bootstrap replicates resampling datasets and seeds"
        )
    elif FLAGS.models:
        print(views.render(*views.models(rows, FLAGS.sort_by, FLAGS.rank_by), 3))
    elif FLAGS.wide:
        print(
            leaderboard.ranked_table(rows, rank_by=FLAGS.rank_by, dataset=FLAGS.dataset)
        )
    elif FLAGS.evaluation:
        header, lines = views.detail(rows, FLAGS.evaluation)
        lines = [[views.clip_name(line[0]), *line[1:]] for line in lines]
        print(views.render(header, lines, numeric_from=3))
    else:
        header, lines, _ = views.summary(rows, rank_by=FLAGS.rank_by)
        lines = [[line[0], views.clip_name(line[1]), *line[2:]] for line in lines]
        print(views.render(header, lines, numeric_from=4))
        print(
            "\nmean over seeds; ±: 95% t-interval (n seeds); "
            "--evaluation=NAME for one evaluation per dataset"
        )
        groups = views.ranking_groups(rows, FLAGS.rank_by)
        if len(groups) > 1:
            print("ranks restart in each protocol group (rows measured alike):")
            print("\n".join("  " + line for line in views.group_legend(groups)))
    if FLAGS.plot_cost:
        from benchmark.report.plot import plot_accuracy_vs_macs

        count = plot_accuracy_vs_macs(rows, FLAGS.plot_cost, FLAGS.rank_by)
        print(f"\nplot of {count} configurations written to {FLAGS.plot_cost}")
    if FLAGS.plot:
        from benchmark.report.plot import plot_transfer_vs_separation

        points = plot_transfer_vs_separation(rows, FLAGS.plot)
        from benchmark.report.plot import rank_correlation

        counts = ", ".join(f"{len(v)} {k}" for k, v in points.items())
        print(f"\nplot of {counts} modules written to {FLAGS.plot}")
        for kind, group in points.items():
            rho = rank_correlation(group)
            if rho is not None:
                print(
                    f"{kind}: Spearman rho(R^2, linear transfer) {rho[0]:+.3f}, "
                    f"95% bootstrap interval [{rho[1]:+.3f}, {rho[2]:+.3f}] over "
                    f"{len(group)} modules"
                )


def run():
    run_main(main)


if __name__ == "__main__":
    run()
