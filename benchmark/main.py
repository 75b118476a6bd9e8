"""zoo-benchmark: score any image feature-vector module and append the results
to a leaderboard.

Examples:
  zoo-benchmark --module=runs/demo/modules/resnet50_softmax_seed0
  zoo-benchmark --module=PATH --suite=transfer --data_dir=~/tensorflow_datasets
  zoo-benchmark --module=PATH --suite=local --datasets=../shared/data/cifar10 \\
      --max_per_class=100 --leaderboard=runs/my_leaderboard.csv
Suites: smoke (embedded digits, seconds), transfer (the paper's eight sets from
prepared TFDS data, `benchmark.datasets`), local (image folders or other specs
given by --datasets). A module is a SavedModel directory, a .tar.gz archive, a
catalog name or an http(s)/gs:// URL resolved through tensorflow_hub
(TFHUB_CACHE_DIR). Modules holding file-system, network or Python ops are
refused before anything runs. Rows are appended only after every evaluation
of a dataset succeeded.
"""

from absl import flags

from zoo.cli import run_main

SMOKE_SUITE = ("digits_5to9",)
SUITES = ("smoke", "transfer", "local")

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "module",
    None,
    "Module handle: SavedModel dir, .tar.gz, catalog name or URL.",
    required=True,
)
flags.DEFINE_enum(
    "suite", "smoke", SUITES, "Dataset suite; 'local' uses --datasets only."
)
flags.DEFINE_list(
    "datasets",
    None,
    "Dataset specs (transfer name, registered name, tfds:NAME or image-folder "
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
flags.DEFINE_integer("batch_size", 128, "Images per forward pass.")
flags.DEFINE_integer("image_size", None, "Override the module's input size.")
flags.DEFINE_string("signature", None, "Override the signature (default: __call__).")
flags.DEFINE_string(
    "value_range",
    None,
    "Override the pixel range the module expects, 'low,high' (0,1 / 0,255 / -1,1); "
    "images in [0, 1] are rescaled to it.",
)
flags.DEFINE_integer(
    "knn_chunk_size", 1024, "kNN query rows per similarity block (bounds memory)."
)
flags.DEFINE_bool("knn_weighted", False, "kNN votes weighted by cosine similarity.")
flags.DEFINE_string("data_dir", None, "Prepared TFDS data directory.")


def dataset_specs(suite, datasets):
    """Returns the dataset specs to run: `datasets` if given, else the suite's."""
    from benchmark.datasets import TRANSFER_SUITE

    if datasets:
        return list(datasets)
    if suite == "local":
        raise ValueError("--suite=local needs --datasets=PATH[,PATH...]")
    return list(SMOKE_SUITE if suite == "smoke" else TRANSFER_SUITE)


def evaluator_config():
    """Returns the per-evaluator keyword config set by flags."""
    return {"knn": {"chunk_size": FLAGS.knn_chunk_size, "weighted": FLAGS.knn_weighted}}


def main(argv):
    del argv
    from benchmark import leaderboard
    from benchmark.datasets import load_benchmark_dataset
    from benchmark.evaluators import create_evaluator
    from benchmark.modules import load_module, parse_value_range
    from benchmark.run import benchmark_module

    leaderboard.read_rows(FLAGS.leaderboard)  # a foreign header fails before work
    value_range = parse_value_range(FLAGS.value_range)
    config = evaluator_config()
    for name in FLAGS.evaluations:
        create_evaluator(name, **config.get(name, {}))
    datasets = [
        load_benchmark_dataset(spec, data_dir=FLAGS.data_dir)
        for spec in dataset_specs(FLAGS.suite, FLAGS.datasets)
    ]
    module = load_module(
        FLAGS.module,
        image_size=FLAGS.image_size,
        signature=FLAGS.signature,
        value_range=value_range,
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
            evaluator_config=config,
            batch_size=FLAGS.batch_size,
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
