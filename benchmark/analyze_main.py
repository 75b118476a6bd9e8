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
import re

from absl import flags

from benchmark.analyses.configs import list_analysis_configs
from export import fetch
from export.fetch import define_flags as define_fetch_flags
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
flags.DEFINE_string("data_dir", None, "Prepared TFDS data directory.")
flags.DEFINE_string(
    "leaderboard",
    "runs/leaderboard.csv",
    "Leaderboard CSV the scalar results are appended to ('' for none).",
)
define_fetch_flags()
flags.adopt_module_key_flags(fetch)


def config_from_flags():
    from benchmark.analyses.config import apply_analysis_overrides, load_analysis_config

    overrides = list(FLAGS.set)
    for field in ("dataset", "split", "max_per_class", "batch_size"):
        value = getattr(FLAGS, field)
        if value is not None:
            overrides.append(f"{field}={json.dumps(value)}")
    return apply_analysis_overrides(load_analysis_config(FLAGS.config), overrides)


def module_keys(modules):
    """Returns a short unique name per module: arch_objective_seed from its
    metadata, else its folder name."""
    keys = []
    for module in modules:
        meta = module.metadata
        if meta.get("objective"):
            arch, seed = meta.get("arch", "module"), meta.get("seed", "")
            key = f"{arch}_{meta['objective']}_seed{seed}"
        else:
            key = os.path.basename(os.path.normpath(module.handle)) or "module"
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)
        base, n = key, 2
        while key in keys:
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return keys


def main(argv):
    del argv
    from benchmark import leaderboard
    from benchmark.analyses import AnalysisError
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
    run_analyses(config, analyses)


def run_analyses(config, analyses):
    import time

    from benchmark import leaderboard
    from benchmark.analysis_plots import cka_heatmap, layer_curves
    from benchmark.analyze import analyze
    from benchmark.datasets import load_benchmark_dataset
    from benchmark.harness import base_row
    from benchmark.modules import load_module, parse_value_range

    dataset = load_benchmark_dataset(config.dataset, data_dir=FLAGS.data_dir)
    load = dict(
        image_size=FLAGS.image_size,
        signature=FLAGS.signature,
        value_range=parse_value_range(FLAGS.value_range),
        output=FLAGS.output,
    )
    loaded = [load_module(handle, **load) for handle in FLAGS.modules]
    keys = module_keys(loaded)
    modules = dict(zip(keys, loaded))
    for key, module in modules.items():
        print(
            f"[module] {key}: {module.handle} sha256 {module.sha256[:12]}", flush=True
        )
    start = time.perf_counter()
    results, total = analyze(
        modules,
        dataset,
        config.split,
        analyses,
        max_per_class=config.max_per_class,
        batch_size=config.batch_size,
        report=lambda line: print(line, flush=True),
    )
    seconds = round(time.perf_counter() - start, 3)
    os.makedirs(FLAGS.out, exist_ok=True)
    written = write_outputs(results, FLAGS.out, cka_heatmap, layer_curves)
    rows = []
    for name, result in results.items():
        analysis = next(a for a in analyses if a.name == name)
        for key, metric, value, extra in result.scalars:
            module = modules[key]
            protocol = dict(
                analysis.protocol(),
                config=config.name,
                input=module.contract(),
                **{k: modules[v].handle for k, v in extra.items()},
            )
            rows.append(
                leaderboard.make_row(
                    **base_row(module),
                    evaluation=name,
                    dataset=dataset.name,
                    split=config.split,
                    test_size=total,
                    metric=metric,
                    value=value,
                    protocol=protocol,
                    seconds=seconds,
                )
            )
    if FLAGS.leaderboard and rows:
        leaderboard.append_rows(FLAGS.leaderboard, rows)
        transfer = transfer_figure(FLAGS.leaderboard, modules, FLAGS.out)
        written += [transfer] if transfer else []
    for path in written:
        print(f"[analyze] wrote {path}")
    where = f" to {FLAGS.leaderboard}" if FLAGS.leaderboard else " (no leaderboard)"
    print(f"{len(rows)} rows appended{where}; {len(written)} files in {FLAGS.out}")


def write_outputs(results, out, cka_heatmap, layer_curves):
    """Writes each result's JSON and figures; returns the paths."""
    written = []
    for name, result in results.items():
        path = os.path.join(out, f"{name}.json")
        _write_json(path, result.data)
        written.append(path)
    if "cka" in results:
        data = results["cka"].data
        for pair in data["pairs"]:
            if pair["a"] < pair["b"] or len(data["pairs"]) == 1:
                path = os.path.join(out, f"cka_{pair['a']}__{pair['b']}.png")
                cka_heatmap(pair, path)
                written.append(path)
        path = os.path.join(out, "summary.json")
        _write_json(path, {"same_layer_cka_mean": data["summary"]})
        written.append(path)
    curves = {
        "class_separation": ("class separation R^2", lambda v: v),
        "sparsity": ("fraction of non-zero activations", lambda v: v),
        "neural_collapse": ("NC1", lambda v: v["nc1"]),
    }
    for name, (ylabel, pick) in curves.items():
        if name not in results:
            continue
        by_module = {
            key: {layer: pick(v) for layer, v in values.items()}
            for key, values in results[name].data["modules"].items()
        }
        path = os.path.join(out, f"{name}.png")
        layer_curves(by_module, ylabel, f"{name} per layer", path)
        written.append(path)
    return written


def _write_json(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def transfer_figure(board, modules, out):
    """Writes transfer_vs_r2.png when the leaderboard has R^2 and linear
    probe rows for at least one of `modules`; returns its path or None."""
    from benchmark import leaderboard
    from benchmark.plot import plot_transfer_vs_separation, separation_points

    shas = {m.sha256 for m in modules.values()}
    rows = leaderboard.read_rows(board)
    measured = [
        r for r in rows if r["module_sha256"] in shas or r["source"] != "measured"
    ]
    points = separation_points(measured)
    if not points["measured"]:
        return None
    path = os.path.join(out, "transfer_vs_r2.png")
    plot_transfer_vs_separation(measured, path)
    return path


def run():
    run_main(main)


if __name__ == "__main__":
    run()
