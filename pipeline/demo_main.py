"""zoo-demo: train, export, benchmark and rank a small zoo end to end.

With no flags: ResNet-50 (width x1/8, 32 px) trained with softmax and cosine
softmax (--objectives=all: every registered objective) on
the embedded digits 0-4, exported as TF-Hub modules, scored by linear probe,
kNN and class separation on digits 5-9, ranked. Everything goes under
--workdir; rows go to --leaderboard (default <workdir>/leaderboard.csv; the
repository's curated leaderboard.csv changes only through deliberate
submissions).
"""

import os
import time

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "objectives",
    ["softmax", "cosine_softmax"],
    "Objectives to train, one model each; 'all' for every registered objective.",
)
flags.DEFINE_string(
    "config",
    "digits",
    "Training config: a name shipped with the zoo (digits, ...) or a .py file.",
)
flags.DEFINE_string(
    "source",
    None,
    "Pretraining dataset (registered name, tfds:NAME or image-folder "
    "path); default: the config's (digits_0to4).",
)
flags.DEFINE_string("target", "digits_5to9", "Transfer dataset spec.")
flags.DEFINE_string("workdir", "runs/demo", "Output directory.")
flags.DEFINE_string(
    "leaderboard", None, "Leaderboard CSV (default <workdir>/leaderboard.csv)."
)
flags.DEFINE_string("arch", None, "Override the config's architecture.")
flags.DEFINE_float("width_multiplier", None, "Override the config's width multiplier.")
flags.DEFINE_integer("image_size", None, "Override the config's resolution.")
flags.DEFINE_integer("epochs", None, "Override the config's epochs.")
flags.DEFINE_integer("global_batch_size", None, "Override the config's batch size.")
flags.DEFINE_integer("max_per_class", None, "Cap on pretraining images per class.")
flags.DEFINE_integer("target_max_per_class", None, "Cap on transfer images per class.")
flags.DEFINE_integer("seed", None, "Override the config's seed.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")

OVERRIDES = (
    "arch",
    "width_multiplier",
    "image_size",
    "epochs",
    "global_batch_size",
    "max_per_class",
    "seed",
)


def main(argv):
    del argv
    from pipeline.demo import DemoConfig, run_demo
    from zoo.objectives import list_objectives

    overrides = {k: FLAGS[k].value for k in OVERRIDES if FLAGS[k].value is not None}
    demo = DemoConfig(
        objectives=tuple(
            list_objectives() if FLAGS.objectives == ["all"] else FLAGS.objectives
        ),
        config=FLAGS.config,
        source=FLAGS.source,
        target=FLAGS.target,
        workdir=FLAGS.workdir,
        leaderboard=FLAGS.leaderboard,
        overrides=overrides,
        target_max_per_class=FLAGS.target_max_per_class,
        data_dir=FLAGS.data_dir,
    )
    start = time.perf_counter()
    _, table = run_demo(demo, report=lambda line: print(line, flush=True))
    print()
    print(table)
    print()
    print(f"modules:     {os.path.abspath(os.path.join(demo.workdir, 'modules'))}")
    print(f"leaderboard: {os.path.abspath(demo.leaderboard_path)}")
    print(f"done in {time.perf_counter() - start:.0f} s")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
