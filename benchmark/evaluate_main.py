"""zoo-evaluate: the evaluations that need the module itself (fine-tuning,
Chexpert, ImageNet distribution shift, calibration), appended to a leaderboard.

Examples:
  zoo-evaluate --module=runs/m --evaluation=fine_tune --dataset=cifar10 \\
      --data_dir=~/tensorflow_datasets             # the paper's protocol
  zoo-evaluate --module=runs/m --evaluation=fine_tune \\
      --dataset=../shared/data/cifar10 --max_per_class=50 --grid=small \\
      --steps=200 --batch_size=32 --cache_images    # minutes on a laptop
  zoo-evaluate --module=runs/m --evaluation=chexpert \\
      --chexpert_root=../shared/data/nih1000_chexpert_format
  zoo-evaluate --module=runs/m --evaluation=imagenet_ood --data_dir=TFDS_DIR
  zoo-evaluate --module=runs/m --evaluation=imagenet_ood \\
      --dataset=../shared/data/imagenette --ood_sets=imagenet_c \\
      --imagenet_c_source=generated --max_examples=200
  zoo-evaluate --module=runs/m --evaluation=calibration \\
      --dataset=../shared/data/imagenette
Protocols and deviations: docs/evaluations.md. Rows are appended only after
the whole evaluation succeeded.
"""

from absl import flags

from zoo.cli import run_main

EVALUATIONS = ("fine_tune", "chexpert", "imagenet_ood", "calibration")

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "module", None, "Module handle: SavedModel dir, archive or URL.", required=True
)
flags.DEFINE_enum("evaluation", None, EVALUATIONS, "Evaluation to run.", required=True)
flags.DEFINE_string(
    "leaderboard", "runs/leaderboard.csv", "Leaderboard CSV to append to."
)
flags.DEFINE_string(
    "dataset",
    None,
    "Dataset spec (transfer name, registered name, tfds:NAME or image folder): "
    "the target of fine_tune and calibration; for imagenet_ood, a labelled set "
    "standing in for ImageNet.",
)
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_integer("image_size", None, "Override the module's input size.")
flags.DEFINE_integer("max_per_class", None, "Cap on images per class and split.")
flags.DEFINE_integer("batch_size", None, "Batch size (default: the protocol's).")
flags.DEFINE_integer("seed", 0, "Seed of augmentation / generated corruptions.")
# fine_tune
flags.DEFINE_integer("steps", 20_000, "fine_tune: steps per fit (paper 20,000).")
flags.DEFINE_enum(
    "grid", "full", ["full", "small"], "fine_tune: lr x wd grid (small = 2 x 2)."
)
flags.DEFINE_bool("cache_images", False, "fine_tune: keep decoded images in memory.")
flags.DEFINE_bool(
    "module_regularization", False, "fine_tune: add the module's regularization_losses."
)
flags.DEFINE_string(
    "strategy", "default", "fine_tune: tf.distribute strategy (zoo.distribute names)."
)
# chexpert
flags.DEFINE_string(
    "chexpert_root",
    None,
    "chexpert: folder the CSV paths are relative to (the parent of "
    "CheXpert-v1.0-small/, or that folder itself).",
)
flags.DEFINE_string("chexpert_train_csv", None, "chexpert: train.csv (default: found).")
flags.DEFINE_string("chexpert_valid_csv", None, "chexpert: valid.csv (default: found).")
flags.DEFINE_list("chexpert_settings", ["valid", "iid"], "chexpert: test settings.")
flags.DEFINE_bool("all_views", False, "chexpert: keep lateral views too.")
# imagenet_ood
flags.DEFINE_list(
    "ood_sets",
    None,
    "imagenet_ood: sets (imagenet2012, imagenet_v2, imagenet_a, imagenet_r, "
    "imagenet_sketch, imagenet_c); default all.",
)
flags.DEFINE_enum(
    "imagenet_c_source",
    "tfds",
    ["tfds", "generated"],
    "imagenet_ood: ImageNet-C from TFDS or generated in memory.",
)
flags.DEFINE_integer("max_examples", None, "imagenet_ood: cap on images per set.")


def config_from_flags():
    """Returns the evaluator's keyword config given by the flags."""
    config = {"image_size": FLAGS.image_size}
    if FLAGS.batch_size:
        config["batch_size"] = FLAGS.batch_size
    if FLAGS.evaluation == "fine_tune":
        from benchmark.evaluators.fine_tune import grid

        learning_rates, weight_decays = grid(FLAGS.grid)
        config.update(
            learning_rates=learning_rates,
            weight_decays=weight_decays,
            steps=FLAGS.steps,
            seed=FLAGS.seed,
            max_per_class=FLAGS.max_per_class,
            cache_images=FLAGS.cache_images,
            module_regularization=FLAGS.module_regularization,
        )
    elif FLAGS.evaluation == "chexpert":
        del config["image_size"]
        config.update(
            settings=tuple(FLAGS.chexpert_settings), frontal_only=not FLAGS.all_views
        )
    elif FLAGS.evaluation == "imagenet_ood":
        config.update(
            imagenet_c_source=FLAGS.imagenet_c_source,
            max_examples=FLAGS.max_examples,
            seed=FLAGS.seed,
        )
        if FLAGS.ood_sets:
            config["sets"] = tuple(FLAGS.ood_sets)
    else:
        config["max_per_class"] = FLAGS.max_per_class
    return config


def data_from_flags():
    """Returns what the evaluation reads: an ImageDataset, ChexpertData, or
    the TFDS data folder (imagenet_ood without --dataset)."""
    from benchmark.datasets import load_benchmark_dataset

    if FLAGS.evaluation == "chexpert":
        from benchmark.chexpert_data import find_chexpert

        if not FLAGS.chexpert_root:
            raise ValueError("--evaluation=chexpert needs --chexpert_root")
        return find_chexpert(
            FLAGS.chexpert_root, FLAGS.chexpert_train_csv, FLAGS.chexpert_valid_csv
        )
    if FLAGS.dataset:
        return load_benchmark_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir)
    if FLAGS.evaluation == "imagenet_ood":
        return FLAGS.data_dir
    raise ValueError(f"--evaluation={FLAGS.evaluation} needs --dataset")


def main(argv):
    del argv
    from benchmark import leaderboard
    from benchmark.evaluators.module_base import create_module_evaluator
    from benchmark.module_run import evaluate_and_append
    from zoo.distribute import create_strategy

    config = config_from_flags()
    create_module_evaluator(FLAGS.evaluation, **config)  # bad config fails first
    leaderboard.read_rows(FLAGS.leaderboard)  # so does a foreign header
    data = data_from_flags()
    strategy = create_strategy(FLAGS.strategy)
    rows = evaluate_and_append(
        FLAGS.leaderboard,
        FLAGS.module,
        FLAGS.evaluation,
        data,
        config=config,
        strategy=strategy,
        report=lambda line: print(line, flush=True),
    )
    print()
    print(leaderboard.ranked_table(rows, rank_by=FLAGS.evaluation))
    print(f"\n{len(rows)} rows appended to {FLAGS.leaderboard}")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
