"""zoo-benchmark: score any image module with a benchmark config and append
the results to a leaderboard.

Examples:
  zoo-benchmark --config=smoke --module=runs/demo/modules/resnet50_softmax_seed0
  zoo-benchmark --config=local --module=PATH --datasets=path/to/cifar10 \\
      --max_per_class=100 --leaderboard=runs/my_leaderboard.csv
  zoo-benchmark --config=paper --module=PATH --data_dir=~/tensorflow_datasets \\
      --evaluations=linear_probe,knn
  zoo-benchmark --config=smoke --module=PATH --set=fine_tune.steps=100 \\
      --set=knn.weighted=true
  zoo-benchmark --config=my_config.py --module=https://example.org/module.tar.gz

A config (benchmark/configs/NAME.py or a .py file) names the evaluators, their
data and settings; --set=KEY=VALUE overrides a config field (max_per_class=50,
datasets=a,b) or an evaluator setting (EVALUATOR.ARG=VALUE, the value read as
JSON when it parses); docs/protocols.md lists the configs. A module is a
SavedModel directory, a .tar.gz archive, a catalog name or an http(s)/gs://
URL, fetched into tensorflow_hub's cache (TFHUB_CACHE_DIR) within
--max_module_mb and --download_deadline_s and rehashed on every use. Its
input size, dtype and value range come from what it declares (--image_size,
--value_range, --signature and --output override them). Modules holding
any op outside the allowlist of pure image-module ops are refused before
anything runs. An evaluator that needs what the module lacks (logits,
fine-tuning) is skipped with a note; each evaluator's rows are appended when
it finishes.
"""

from absl import flags

from benchmark.configs import list_configs
from export import fetch
from export.fetch import define_flags as define_fetch_flags
from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "module",
    None,
    "Module handle: SavedModel dir, .tar.gz, catalog name or URL.",
    required=True,
)
flags.DEFINE_string(
    "config",
    "smoke",
    f"Benchmark config: one of {', '.join(list_configs())}, or a .py file "
    "defining get_config().",
)
flags.DEFINE_multi_string(
    "set",
    [],
    "Config override KEY=VALUE (repeatable): a config field (max_per_class=50) "
    "or EVALUATOR.ARG (knn.weighted=true, chexpert.data=chexpert:DIR).",
)
flags.DEFINE_list(
    "datasets",
    None,
    "Dataset specs of the config's per-dataset evaluations (transfer name, "
    "tfds:NAME, image-folder path, ...); same as --set=datasets=...",
)
flags.DEFINE_list("evaluations", None, "Run only these evaluators of the config.")
flags.DEFINE_integer(
    "max_per_class", None, "Cap on images per class and split (--set=max_per_class)."
)
flags.DEFINE_string(
    "leaderboard", "runs/leaderboard.csv", "Leaderboard CSV to append to."
)
flags.DEFINE_string("cache_dir", "runs/feature_cache", "Feature cache directory.")
flags.DEFINE_integer("batch_size", None, "Images per forward pass (--set=batch_size).")
flags.DEFINE_integer("image_size", None, "Override the module's input size.")
flags.DEFINE_string("signature", None, "Override the signature (default: __call__).")
flags.DEFINE_string(
    "output", None, "Pick this entry of a signature that returns a dict."
)
flags.DEFINE_string(
    "value_range",
    None,
    "Override the pixel range the module expects, 'low,high' (0,1 / 0,255 / -1,1); "
    "images in [0, 1] are rescaled to it.",
)
flags.DEFINE_string("data_dir", None, "Prepared TFDS data directory.")
define_fetch_flags()
flags.adopt_module_key_flags(fetch)
flags.DEFINE_string(
    "strategy", "default", "tf.distribute strategy for fine-tuning (zoo.distribute)."
)


def config_from_flags():
    """Returns the BenchmarkConfig named by --config with every override applied."""
    from benchmark.config import apply_overrides, load_config

    overrides = list(FLAGS.set)
    if FLAGS.datasets:
        overrides.append("datasets=" + ",".join(FLAGS.datasets))
    if FLAGS.max_per_class is not None:
        overrides.append(f"max_per_class={FLAGS.max_per_class}")
    if FLAGS.batch_size is not None:
        overrides.append(f"batch_size={FLAGS.batch_size}")
    return apply_overrides(load_config(FLAGS.config), overrides)


def main(argv):
    del argv
    from benchmark import leaderboard
    from benchmark.harness import prepare, run_benchmark
    from benchmark.modules import parse_value_range
    from export.fetch import set_limits
    from zoo.distribute import create_strategy

    set_limits(FLAGS.max_module_mb, FLAGS.download_deadline_s)
    leaderboard.read_rows(FLAGS.leaderboard)  # a foreign header fails before work
    config = config_from_flags()
    prepare(config, FLAGS.evaluations)  # bad settings fail before the module loads
    if FLAGS.image_size is not None and FLAGS.image_size < 1:
        raise ValueError(f"--image_size must be positive, got {FLAGS.image_size}")
    load = dict(
        image_size=FLAGS.image_size,
        signature=FLAGS.signature,
        value_range=parse_value_range(FLAGS.value_range),
        output=FLAGS.output,
    )
    appended = []

    def append(rows):
        leaderboard.append_rows(FLAGS.leaderboard, rows)
        appended.extend(rows)

    run_benchmark(
        config,
        FLAGS.module,
        only=FLAGS.evaluations,
        data_dir=FLAGS.data_dir,
        cache_dir=FLAGS.cache_dir,
        strategy=create_strategy(FLAGS.strategy),
        load=load,
        on_rows=append,
        report=lambda line: print(line, flush=True),
    )
    if not appended:
        raise ValueError(
            f"config {config.name} measured nothing for {FLAGS.module} (every "
            "evaluator was skipped); no rows appended"
        )
    print()
    print(leaderboard.summary_table(appended))
    print(f"\n{len(appended)} rows appended to {FLAGS.leaderboard}")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
