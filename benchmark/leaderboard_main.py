"""zoo-leaderboard: render a leaderboard CSV as a ranked markdown table and,
with --plot, a PNG of linear transfer accuracy against class separation R^2
(measured and reported modules side by side).

Example:
  zoo-leaderboard --leaderboard=leaderboard.csv --rank_by=linear_probe \\
      --dataset=cifar10 --plot=runs/transfer_vs_r2.png
"""

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("leaderboard", "leaderboard.csv", "Leaderboard CSV to render.")
flags.DEFINE_string("rank_by", "linear_probe", "Evaluation whose value ranks rows.")
flags.DEFINE_string("dataset", None, "Rank by this dataset's value of --rank_by.")
flags.DEFINE_enum(
    "source",
    "all",
    ["all", "measured", "reported"],
    "Rows measured here, reported in papers, or both.",
)
flags.DEFINE_string(
    "plot",
    None,
    "Also write linear transfer accuracy vs class separation R^2 to this PNG.",
)


def main(argv):
    del argv
    from benchmark import leaderboard

    if FLAGS.plot:
        from benchmark.plot import check_plot_path

        check_plot_path(FLAGS.plot)
    rows = leaderboard.read_rows(FLAGS.leaderboard)
    if FLAGS.source == "measured":
        rows = [r for r in rows if r["source"] == "measured"]
    elif FLAGS.source == "reported":
        rows = [r for r in rows if r["source"] != "measured"]
    if not rows:
        raise ValueError(f"{FLAGS.leaderboard} has no rows to show")
    print(leaderboard.ranked_table(rows, rank_by=FLAGS.rank_by, dataset=FLAGS.dataset))
    if FLAGS.plot:
        from benchmark.plot import plot_transfer_vs_separation

        points = plot_transfer_vs_separation(rows, FLAGS.plot)
        from benchmark.plot import rank_correlation

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
