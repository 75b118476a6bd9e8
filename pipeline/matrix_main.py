"""zoo-matrix: train the zoo matrix (objectives x architectures x seeds) and
export every run as a TF-Hub module; with a matrix config (a whole study,
such as mini_zoo), also train its variants (arms such as a temperature
sweep), score every module through the benchmark harness under each of the
study's benchmark configs (run requests also write results bundles to
WORKDIR/bundles/) and run the representation analyses per seed.

Examples:
  zoo-matrix --config=digits --objectives=softmax,cosine_softmax --seeds=0,1
  zoo-matrix --config=imagenet_resnet50 --objectives=all --seeds=0,1,2,3,4,5,6,7 \\
      --strategy=tpu:NAME --workdir=gs://BUCKET/zoo --archive
  zoo-matrix --config=mini_zoo --dataset=path/to/imagenette \\
      --transfer=path/to/cifar10 --chexpert=chexpert:path/to/chexpert
Add --benchmark_configs=mini_zoo to score only the main config now (train
first, the costlier configs later, or on another machine).
Rerun the same command after an interruption: finished runs, benchmarks and
analyses are skipped and the interrupted training resumes from its
checkpoint. --config names a matrix config (mini_zoo) or a training config
(digits, ...); flags given explicitly override the matrix config's values.
"""

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "config",
    "digits",
    "A matrix config (mini_zoo) or training config name, or a .py file.",
)
flags.DEFINE_list("objectives", ["softmax"], "Objective names, or 'all'.")
flags.DEFINE_list("archs", None, "Architectures (default: the config's).")
flags.DEFINE_list("seeds", ["0"], "Seeds.")
flags.DEFINE_string(
    "workdir", "runs/matrix", "Root of runs and modules (a matrix config sets its own)."
)
flags.DEFINE_integer("epochs", None, "Override: epochs of every run.")
flags.DEFINE_integer(
    "max_per_class", None, "Override: images per class cap (0: every image)."
)
flags.DEFINE_string("dataset", None, "Override: training dataset spec.")
flags.DEFINE_integer("image_size", None, "Override: resolution of every run.")
flags.DEFINE_float("width_multiplier", None, "Override: network width of every run.")
flags.DEFINE_string("transfer", None, "Matrix config: the transfer dataset spec.")
flags.DEFINE_string("chexpert", None, "Matrix config: Chexpert data (chexpert:DIR).")
flags.DEFINE_bool("export", True, "Export each run as a TF-Hub module.")
flags.DEFINE_bool("archive", False, "Also write each module as a .tar.gz.")
flags.DEFINE_list(
    "benchmark_configs",
    None,
    "Matrix config: score only these of its benchmark configs this run "
    "(default: all); the rest run when the command is repeated without it.",
)
flags.DEFINE_string(
    "shard",
    None,
    "Train only shard I/N of the runs (run i when i % N == I); each run is "
    "resumable and a finished one is skipped, so shards are idempotent jobs.",
)
flags.DEFINE_string(
    "strategy",
    "default",
    "default, one_device, mirrored, multi_worker, tpu[:ADDR], cpu:N",
)


def main(argv):
    del argv
    from benchmark.runner.plan import parse_shard
    from zoo.distribute import create_strategy

    shard = parse_shard(FLAGS.shard)
    strategy = create_strategy(FLAGS.strategy)
    from pipeline.configs import is_matrix_config, load_matrix_config
    from pipeline.matrix import MatrixConfig
    from zoo.objectives import list_objectives

    objectives = list(FLAGS.objectives)
    if objectives == ["all"]:
        objectives = list_objectives()
    try:
        seeds = tuple(int(s) for s in FLAGS.seeds)
    except ValueError:
        raise ValueError(f"--seeds must be integers, got {FLAGS.seeds}") from None
    overrides = {
        k: FLAGS[k].value
        for k in (
            "epochs",
            "max_per_class",
            "dataset",
            "image_size",
            "width_multiplier",
        )
        if FLAGS[k].value is not None
    }
    if FLAGS.max_per_class == 0:  # 0: every image
        overrides["max_per_class"] = None
    given = {
        "objectives": tuple(objectives),
        "archs": tuple(FLAGS.archs) if FLAGS.archs else None,
        "seeds": seeds,
        "workdir": FLAGS.workdir,
        "export": FLAGS.export,
        "archive": FLAGS.archive,
        "transfer": FLAGS.transfer,
        "chexpert": FLAGS.chexpert,
        "only_configs": (
            tuple(FLAGS.benchmark_configs) if FLAGS.benchmark_configs else None
        ),
    }
    if is_matrix_config(FLAGS.config):
        matrix = load_matrix_config(FLAGS.config)
        flag_of = {"only_configs": "benchmark_configs"}
        changes = {k: v for k, v in given.items() if FLAGS[flag_of.get(k, k)].present}
        matrix = matrix.replace(
            **changes, overrides={**matrix.overrides, **overrides}, shard=shard
        )
    else:
        for name in ("transfer", "chexpert", "only_configs"):
            if given.pop(name) is not None:
                flag = "benchmark_configs" if name == "only_configs" else name
                raise ValueError(
                    f"--{flag} is read by matrix configs only (such as mini_zoo); "
                    f"--config={FLAGS.config} is a training config"
                )
        matrix = MatrixConfig(
            config=FLAGS.config, overrides=overrides, shard=shard, **given
        )
    from pipeline.study import run_study

    report = lambda s: print(s, flush=True)  # noqa: E731
    summary = run_study(matrix, strategy, report=report)
    print("\n| run | holdout top-1 | module |\n|---|---|---|")
    for row in summary:
        top1 = row["holdout_top1"]
        top1 = f"{100 * top1:.1f}" if top1 is not None else "-"
        print(f"| {row['name']} | {top1} | {row['module'] or '-'} |")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
