"""zoo-benchmark: score any image feature-vector module and append the results
to a leaderboard.

Examples:
  zoo-benchmark --module=runs/demo/modules/resnet50_softmax_seed0
  zoo-benchmark --module=PATH --datasets=../shared/data/cifar10 \\
      --max_per_class=100 --leaderboard=runs/my_leaderboard.csv
A module is a SavedModel directory or an http(s)/gs:// URL resolved through
tensorflow_hub (TFHUB_CACHE_DIR). Rows are appended only after every
evaluation of a dataset succeeded.
"""

from absl import flags

from zoo.cli import run_main

SUITES = {
    "smoke": ("digits_5to9",),
    "transfer": (
        "tfds:food101",
        "tfds:cifar10",
        "tfds:cifar100",
        "tfds:caltech_birds2011",  # Birdsnap is not in TFDS; nearest substitute
        "tfds:sun397",
        "tfds:cars196",
        "tfds:oxford_iiit_pet",
        "tfds:oxford_flowers102",
    ),
}

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "module", None, "Module handle: SavedModel dir or URL.", required=True
)
flags.DEFINE_enum(
    "suite",
    "smoke",
    sorted(SUITES) + ["local"],
    "Dataset suite; 'local' uses --datasets only.",
)
flags.DEFINE_list(
    "datasets",
    None,
    "Dataset specs (registered name, tfds:NAME or image-folder "
    "path); replaces the suite's datasets.",
)
flags.DEFINE_list(
    "evaluations", ["linear_probe", "knn", "class_separation"], "Evaluators to run."
)
flags.DEFINE_string(
    "leaderboard", "runs/leaderboard.csv", "Leaderboard CSV to append to."
)
flags.DEFINE_string("cache_dir", "runs/feature_cache", "Feature cache directory.")
flags.DEFINE_integer("max_per_class", None, "Cap on images per class and split.")
flags.DEFINE_integer("image_size", None, "Override the module's input size.")
flags.DEFINE_string("signature", None, "Override the signature (default: __call__).")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")


def datasets_from_flags():
    """Returns the dataset specs to run."""
    if FLAGS.datasets:
        return list(FLAGS.datasets)
    if FLAGS.suite == "local":
        raise ValueError("--suite=local needs --datasets=PATH[,PATH...]")
    return list(SUITES[FLAGS.suite])


def main(argv):
    del argv
    from benchmark import leaderboard
    from benchmark.evaluators import create_evaluator
    from benchmark.modules import load_module
    from benchmark.run import benchmark_module
    from zoo.data import load_dataset

    leaderboard.read_rows(FLAGS.leaderboard)  # a foreign header fails before work
    for name in FLAGS.evaluations:
        create_evaluator(name)
    datasets = [load_dataset(s, data_dir=FLAGS.data_dir) for s in datasets_from_flags()]
    module = load_module(
        FLAGS.module, image_size=FLAGS.image_size, signature=FLAGS.signature
    )
    print(f"[module] {module.handle} {module.contract()} sha256 {module.sha256[:12]}")
    rows = []
    for dataset in datasets:
        new = benchmark_module(
            module,
            dataset,
            FLAGS.evaluations,
            max_per_class=FLAGS.max_per_class,
            cache_dir=FLAGS.cache_dir,
            report=lambda s: print(s, flush=True),
        )
        leaderboard.append_rows(FLAGS.leaderboard, new)
        rows += new
    print()
    print(leaderboard.ranked_table(rows, rank_by=FLAGS.evaluations[0]))
    print(f"\n{len(rows)} rows appended to {FLAGS.leaderboard}")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
