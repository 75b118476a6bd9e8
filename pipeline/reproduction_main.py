"""zoo-reproduce: write the reproduction report of a study (a markdown file,
from `zoo-matrix --config=mini_zoo`): per objective, source accuracy, R^2,
linear / kNN / fine-tuning transfer, Chexpert AUC, sparsity and NC1 as mean
± std over seeds, and the paper's four claims, each with its statistic, a
bootstrap interval over seeds and a verdict; then the few-shot numbers, and
per arm of the study (mini_zoo: objectives, temperature, length) the rank
correlation of R^2 with each transfer column, with its interval and verdict,
and a figure of R^2 against linear transfer beside the paper's rows.
Figures go to a `reproduction/` folder beside --out.

Example:
  zoo-matrix --config=mini_zoo --dataset=path/to/imagenette \\
      --transfer=path/to/cifar10 --chexpert=chexpert:path/to/xrays
  zoo-reproduce --workdir=runs/mini_zoo --out=runs/mini_zoo/reproduction.md
The data, objectives, seeds and sizes are read from WORKDIR/study.json,
which zoo-matrix writes; --dataset and --transfer override them.
"""

import os

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "mini_zoo", "The study's matrix config (name or .py).")
flags.DEFINE_string("workdir", "runs/mini_zoo", "The study's zoo-matrix --workdir.")
flags.DEFINE_string("dataset", None, "The pretraining dataset the study used.")
flags.DEFINE_string("transfer", None, "The transfer dataset the study used.")
flags.DEFINE_string(
    "out", None, "The report to write (default: WORKDIR/reproduction.md)."
)
flags.DEFINE_string(
    "paper_leaderboard",
    "leaderboard.csv",
    "A leaderboard holding the paper's rows (the curated one), drawn beside "
    "each arm of the study; a missing default file draws none.",
)


def main(argv):
    del argv
    from pipeline.configs import load_matrix_config
    from pipeline.reproduction import write_report
    from pipeline.study import apply_record

    matrix = apply_record(load_matrix_config(FLAGS.config), FLAGS.workdir)
    overrides = dict(matrix.overrides)
    if FLAGS.dataset:
        overrides["dataset"] = FLAGS.dataset
    changes = {"workdir": FLAGS.workdir, "overrides": overrides}
    if FLAGS.transfer:
        changes["transfer"] = FLAGS.transfer
    out = FLAGS.out or os.path.join(FLAGS.workdir, "reproduction.md")
    paper = FLAGS.paper_leaderboard
    if not os.path.isfile(paper):
        if FLAGS["paper_leaderboard"].present:
            raise ValueError(
                f"--paper_leaderboard={paper} is not a file; pass the curated "
                "leaderboard.csv or leave the flag out"
            )
        paper = None
    claims = write_report(matrix.replace(**changes), out, paper_leaderboard=paper)
    for key, claim in claims.items():
        print(f"claim ({key}): {claim['verdict']}")
    print(f"wrote {out}")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
