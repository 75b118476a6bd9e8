"""zoo-train: train one model of the zoo from a config file plus flag overrides.

Examples:
  zoo-train --config=digits --objective=cosine_softmax --workdir=runs/digits_cos
  zoo-train --config=imagenet_resnet50 --objective=softmax --strategy=tpu:my-tpu \
      --data_dir=gs://bucket/tfds --workdir=gs://bucket/runs/softmax_seed0
  zoo-train --config=digits --strategy=cpu:2 --workdir=runs/two_replicas
Rerunning the same command resumes from the workdir's latest checkpoint.
Writes <workdir>/model.weights.h5 (EMA weights of the best holdout epoch) and
<workdir>/train_info.json, the input of zoo-export; also checkpoints/,
history.json and tensorboard/.
"""

import json

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "config",
    "digits",
    "Training config: a name shipped with the zoo (digits, ...) or a .py file.",
)
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
flags.DEFINE_string("manual_dir", None, "Override: TFDS manual-download directory.")
flags.DEFINE_integer("holdout_examples", None, "Override: exact holdout size.")
flags.DEFINE_string(
    "precision", None, "Override: auto, float32, mixed_float16 or mixed_bfloat16."
)
flags.DEFINE_integer("steps_per_call", None, "Override: steps per compiled call.")
flags.DEFINE_integer(
    "checkpoint_every_steps", None, "Override: extra checkpoint period in steps."
)
flags.DEFINE_bool("deterministic", None, "Override: deterministic ops and input.")
flags.DEFINE_bool("sync_bn", None, "Override: batch-norm statistics over replicas.")
flags.DEFINE_bool("jit_compile", None, "Override: XLA-compile the step.")
flags.DEFINE_bool(
    "fused_batch_norm", None, "Override: train batch norm with the fused kernel."
)
flags.DEFINE_bool(
    "matmul_pointwise_conv",
    None,
    "Override: run 1x1 convolutions as one matrix product (default: on CPU).",
)
flags.DEFINE_string(
    "strategy",
    "default",
    "default, one_device, mirrored, multi_worker (TF_CONFIG), tpu[:ADDRESS] or "
    "cpu:N (N logical CPU replicas).",
)

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
    "manual_dir",
    "holdout_examples",
    "precision",
    "steps_per_call",
    "checkpoint_every_steps",
    "deterministic",
    "sync_bn",
    "jit_compile",
    "fused_batch_norm",
    "matmul_pointwise_conv",
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
        if not isinstance(overrides["objective_hparams"], dict):
            raise ValueError(
                "--objective_hparams must be a JSON object such as "
                f"'{{\"tau\": 0.05}}', got {FLAGS.objective_hparams}"
            )
    return config.replace(**overrides)


def main(argv):
    del argv
    import os

    import zoo
    from zoo.config_files import check_config_name

    configs = os.path.join(os.path.dirname(zoo.__file__), "configs")
    check_config_name(FLAGS.config, configs, "training config")  # before TF
    from zoo.distribute import create_strategy

    strategy = create_strategy(FLAGS.strategy)  # before TF starts its devices
    from zoo.trainer import train_and_evaluate

    result = train_and_evaluate(
        config_from_flags(),
        FLAGS.workdir,
        strategy=strategy,
        report=lambda s: print(s, flush=True),
    )
    best = result.info["holdout"]
    print(
        f"checkpoint: {result.workdir} (best epoch {best.get('epoch')}, holdout "
        f"top1 {best.get('top1', float('nan')):.4f})"
    )


def run():
    run_main(main)


if __name__ == "__main__":
    run()
