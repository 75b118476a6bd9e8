"""zoo-train: train one model of the zoo from a config file plus flag overrides.

Example:
  zoo-train --config=digits --objective=cosine_softmax --workdir=runs/digits_cos
Writes <workdir>/model.weights.h5 and <workdir>/train_info.json, the input of
zoo-export.
"""

import json

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "digits", "Config name in zoo/configs or a .py file.")
flags.DEFINE_string("workdir", None, "Output directory.", required=True)
flags.DEFINE_string("objective", None, "Override: registered objective name.")
flags.DEFINE_string(
    "objective_hparams", None, "Override: JSON dict of objective hyperparameters."
)
flags.DEFINE_string("arch", None, "Override: registered architecture name.")
flags.DEFINE_string(
    "dataset", None, "Override: registered name, tfds:NAME or image-folder path."
)
flags.DEFINE_string("data_dir", None, "Override: TFDS data directory.")
flags.DEFINE_float("width_multiplier", None, "Override: channel multiplier.")
flags.DEFINE_integer("image_size", None, "Override: resolution.")
flags.DEFINE_integer("epochs", None, "Override: epochs.")
flags.DEFINE_integer("global_batch_size", None, "Override: global batch size.")
flags.DEFINE_float("base_learning_rate", None, "Override: learning rate per 256.")
flags.DEFINE_integer("max_per_class", None, "Override: images per class cap.")
flags.DEFINE_integer("seed", None, "Override: seed.")

OVERRIDES = (
    "objective",
    "arch",
    "dataset",
    "data_dir",
    "width_multiplier",
    "image_size",
    "epochs",
    "global_batch_size",
    "base_learning_rate",
    "max_per_class",
    "seed",
)


def config_from_flags():
    """Returns the TrainConfig given by --config and the override flags."""
    from zoo.configs import load_config

    config = load_config(FLAGS.config)
    if FLAGS.objective:  # the config's per-objective settings first, flags win
        config = config.for_objective(FLAGS.objective)
    overrides = {k: FLAGS[k].value for k in OVERRIDES if FLAGS[k].value is not None}
    if FLAGS.objective_hparams:
        try:
            overrides["objective_hparams"] = json.loads(FLAGS.objective_hparams)
        except json.JSONDecodeError as e:
            raise ValueError(f"--objective_hparams is not valid JSON: {e}") from None
    return config.replace(**overrides)


def main(argv):
    del argv
    from zoo.trainer import train_and_evaluate

    result = train_and_evaluate(
        config_from_flags(), FLAGS.workdir, report=lambda s: print(s, flush=True)
    )
    top1 = result.info["holdout"]["top1"]
    print(f"checkpoint: {result.workdir} (holdout top1 {top1:.4f})")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
