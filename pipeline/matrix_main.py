"""zoo-matrix: train the zoo matrix (objectives x architectures x seeds) and
export every run as a TF-Hub module.

Examples:
  zoo-matrix --config=digits --objectives=softmax,cosine_softmax --seeds=0,1
  zoo-matrix --config=imagenet_resnet50 --objectives=all --seeds=0,1,2,3,4,5,6,7 \\
      --strategy=tpu:NAME --workdir=gs://BUCKET/zoo --archive
Rerun the same command after an interruption: finished runs are skipped and
the interrupted one resumes from its checkpoint.
"""

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "digits", "Config name in zoo/configs or a .py file.")
flags.DEFINE_list("objectives", ["softmax"], "Objective names, or 'all'.")
flags.DEFINE_list("archs", None, "Architectures (default: the config's).")
flags.DEFINE_list("seeds", ["0"], "Seeds.")
flags.DEFINE_string("workdir", "runs/matrix", "Root of runs and modules.")
flags.DEFINE_integer("epochs", None, "Override: epochs of every run.")
flags.DEFINE_integer("max_per_class", None, "Override: images per class cap.")
flags.DEFINE_string("dataset", None, "Override: training dataset spec.")
flags.DEFINE_integer("image_size", None, "Override: resolution of every run.")
flags.DEFINE_bool("export", True, "Export each run as a TF-Hub module.")
flags.DEFINE_bool("archive", False, "Also write each module as a .tar.gz.")
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
    from benchmark.plan import parse_shard
    from zoo.distribute import create_strategy

    shard = parse_shard(FLAGS.shard)
    strategy = create_strategy(FLAGS.strategy)
    from pipeline.matrix import MatrixConfig, run_matrix
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
        for k in ("epochs", "max_per_class", "dataset", "image_size")
        if FLAGS[k].value is not None
    }
    matrix = MatrixConfig(
        config=FLAGS.config,
        objectives=tuple(objectives),
        archs=tuple(FLAGS.archs) if FLAGS.archs else None,
        seeds=seeds,
        workdir=FLAGS.workdir,
        overrides=overrides,
        export=FLAGS.export,
        archive=FLAGS.archive,
        shard=shard,
    )
    summary = run_matrix(matrix, strategy, report=lambda s: print(s, flush=True))
    print("\n| run | holdout top-1 | module |\n|---|---|---|")
    for row in summary:
        top1 = row["holdout_top1"]
        top1 = f"{100 * top1:.1f}" if top1 is not None else "-"
        print(f"| {row['name']} | {top1} | {row['module'] or '-'} |")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
