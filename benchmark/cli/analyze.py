"""zoo-analyze: the paper's representation analyses of one or more modules
on one dataset split: CKA between every pair of layers of every pair of
modules, sparsity, neural collapse (NC1-NC4) and class separation R^2 at
every layer. Streamed: memory does not grow with the dataset.

Examples:
  zoo-analyze --config=smoke --out=runs/analysis \\
      --modules=runs/demo/modules/resnet50_softmax_seed0,runs/demo/modules/resnet50_cosine_softmax_seed0
  zoo-analyze --modules=A,B --dataset=imagefolder:path/to/imagenette --split=val \\
      --analyses=cka,sparsity --image_size=64 --out=runs/imagenette_cka
  zoo-analyze --config=paper --modules=authors_resnet50_softmax_seed0 \\
      --set=cka.passes=2 --out=runs/paper_cka

Writes to --out: <analysis>.json for each analysis (the full results and
the protocol), cka_<A>__<B>.png heatmaps (the paper's Figure 3),
class_separation.png, sparsity.png and neural_collapse.png (one curve per
module over its layers), summary.json (mean same-layer CKA per layer over
the pairs of distinct modules) and, when the leaderboard holds R^2 and
linear-probe rows for the modules, transfer_vs_r2.png with Spearman's rho.
Scalar results are appended to --leaderboard with full provenance (metric
`name:layer`, the bare name for the feature vector). Modules are loaded
like zoo-benchmark's (same handles, op allowlist and overrides).
"""

import json
import os

from absl import flags

from benchmark.analyses.configs import list_analysis_configs
from export import flags as fetch_flags
from export.flags import define_fetch_flags
from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_list("modules", None, "Module handles, comma-separated.", required=True)
flags.DEFINE_string(
    "config",
    "smoke",
    f"Analysis config: one of {', '.join(list_analysis_configs())}, or a .py file.",
)
flags.DEFINE_string("dataset", None, "Dataset spec (default: the config's).")
flags.DEFINE_string("split", None, "Split (default: the config's).")
flags.DEFINE_list(
    "analyses",
    None,
    "Run only these: cka, sparsity, neural_collapse, class_separation.",
)
flags.DEFINE_multi_string(
    "set",
    [],
    "Config override KEY=VALUE: a field or ANALYSIS.SETTING (cka.batch_size=1500).",
)
flags.DEFINE_string("out", None, "Output folder for JSON and PNG files.", required=True)
flags.DEFINE_integer("max_per_class", None, "Cap on images per class.")
flags.DEFINE_integer("batch_size", None, "Images per forward pass.")
flags.DEFINE_integer("image_size", None, "Override every module's input size.")
flags.DEFINE_string("signature", None, "Override the signature (default: __call__).")
flags.DEFINE_string(
    "output", None, "Pick this entry of a signature that returns a dict."
)
flags.DEFINE_string("value_range", None, "Override the pixel range, 'low,high'.")
flags.DEFINE_string(
    "input_normalization",
    None,
    "Override the input normalisation: unit, minus_one_one, imagenet_mean_std, "
    "0_255 or uint8.",
)
flags.DEFINE_string("data_dir", None, "Prepared TFDS data directory.")
flags.DEFINE_string(
    "leaderboard",
    "runs/leaderboard.csv",
    "Leaderboard CSV the scalar results are appended to ('' for none).",
)
define_fetch_flags()
flags.adopt_module_key_flags(fetch_flags)


def config_from_flags():
    from benchmark.analyses.config import apply_analysis_overrides, load_analysis_config

    overrides = list(FLAGS.set)
    for field in ("dataset", "split", "max_per_class", "batch_size"):
        value = getattr(FLAGS, field)
        if value is not None:
            overrides.append(f"{field}={json.dumps(value)}")
    return apply_analysis_overrides(load_analysis_config(FLAGS.config), overrides)


def main(argv):
    del argv
    if not FLAGS.modules:  # checked before TensorFlow loads
        raise ValueError("--modules is empty; pass at least one module handle")
    from benchmark.runner.execute import check_module_handle

    for handle in FLAGS.modules:
        check_module_handle(handle)
    from benchmark.analyses import AnalysisError
    from benchmark.results import leaderboard
    from benchmark.runner.analysis_run import run_analyses
    from export.fetch import set_limits

    set_limits(FLAGS.max_module_mb, FLAGS.download_deadline_s)
    if FLAGS.leaderboard:
        leaderboard.read_rows(FLAGS.leaderboard)
        leaderboard.writable_path(FLAGS.leaderboard)
    if os.path.exists(FLAGS.out) and not os.path.isdir(FLAGS.out):
        raise AnalysisError(f"--out {FLAGS.out} is a file; pass a folder")
    config = config_from_flags()
    analyses = config.build(FLAGS.analyses)
    if FLAGS.image_size is not None and FLAGS.image_size < 1:
        raise AnalysisError(f"--image_size must be positive, got {FLAGS.image_size}")
    if not FLAGS.modules:
        raise AnalysisError("--modules is empty; pass at least one module handle")
    run_analyses(
        config,
        analyses,
        FLAGS.modules,
        FLAGS.out,
        leaderboard_path=FLAGS.leaderboard,
        load=dict(
            image_size=FLAGS.image_size,
            signature=FLAGS.signature,
            value_range=FLAGS.value_range,
            output=FLAGS.output,
            input_normalization=FLAGS.input_normalization,
        ),
        data_dir=FLAGS.data_dir,
    )


def run():
    run_main(main)


if __name__ == "__main__":
    run()
