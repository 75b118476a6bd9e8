"""zoo-leaderboard: render a leaderboard CSV as a ranked markdown table.

Example:
  zoo-leaderboard --leaderboard=leaderboard.csv --rank_by=linear_probe \\
      --dataset=cifar10
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


def main(argv):
    del argv
    from benchmark import leaderboard

    rows = leaderboard.read_rows(FLAGS.leaderboard)
    if FLAGS.source == "measured":
        rows = [r for r in rows if r["source"] == "measured"]
    elif FLAGS.source == "reported":
        rows = [r for r in rows if r["source"] != "measured"]
    if not rows:
        raise ValueError(f"{FLAGS.leaderboard} has no rows to show")
    print(leaderboard.ranked_table(rows, rank_by=FLAGS.rank_by, dataset=FLAGS.dataset))


def run():
    run_main(main)


if __name__ == "__main__":
    run()
