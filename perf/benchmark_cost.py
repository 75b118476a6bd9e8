"""Where a mini-zoo module's benchmark time goes, next to its training time
(the baseline), both measured in this run: one module trained at the
mini-zoo config (pipeline/configs/mini_zoo.py: ResNet-50 x1/4 at 32 px on
Imagenette, softmax, seed 0), exported, then scored by the mini-zoo
benchmark config through the harness with a fresh feature cache (every
extraction paid), then its share of the per-seed analyses. Prints seconds
per stage and the ratio benchmark / training (goal: at most 1.0).

Command (about 3 minutes on 2 CPU cores; image folders or TFDS names, the
config's TFDS datasets by default):
  .venv/bin/python perf/benchmark_cost.py --imagenette=DIR --cifar10=DIR \\
      --chexpert=DIR [--workdir=DIR] [--keep] [--full_transfer]
  --workdir with an already trained module (DIR/train/NAME/train_info.json)
  skips training and reuses its recorded time. --full_transfer then scores
  the linear probe and kNN on the whole transfer set (CIFAR-10: 50,000 /
  10,000 images) and prints that table too (a few minutes more).

Measured: see docs/benchmark_cost.md (the table this script prints).
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

NAME = "resnet50_softmax_seed0"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--imagenette",
        default="tfds:imagenette",
        help="pretraining data: an image folder ROOT/{train,val} or tfds:NAME",
    )
    parser.add_argument(
        "--cifar10",
        default="tfds:cifar10",
        help="transfer data: an image folder ROOT/{train,test} or tfds:NAME",
    )
    parser.add_argument("--chexpert", default=None, help="a CheXpert-format folder")
    parser.add_argument("--workdir", default=None, help="default: a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    parser.add_argument(
        "--only", default=None, help="comma-separated evaluators (default: all)"
    )
    parser.add_argument(
        "--full_transfer",
        action="store_true",
        help="then also the config's linear probe and kNN on the whole "
        "transfer set (CIFAR-10: 50,000 train / 10,000 test), fresh cache",
    )
    return parser.parse_args()


def full_transfer(config, module, cache_dir):
    """Returns (stages, seconds, rows) of the config's linear probe and kNN
    on every image of the transfer set's train and test splits."""
    from benchmark.runner.harness import run_benchmark

    keep = ("linear_probe", "knn")
    full = dataclasses.replace(
        config,
        max_per_class=None,
        evaluations=tuple(e for e in config.evaluations if e.evaluator in keep),
    )
    stages = []
    start = time.perf_counter()
    rows = run_benchmark(
        full, module, cache_dir=cache_dir, timings=stages, report=lambda line: None
    )
    return stages, time.perf_counter() - start, rows


def train(matrix, workdir):
    """Returns (module folder, training seconds: wall, epochs only)."""
    from pipeline.matrix import run_matrix
    from zoo.trainer import INFO_NAME

    info_path = os.path.join(workdir, "train", NAME, INFO_NAME)
    trained = os.path.isfile(info_path)
    start = time.perf_counter()
    (cell,) = run_matrix(matrix, report=lambda line: None)
    wall = time.perf_counter() - start
    with open(info_path) as f:
        info = json.load(f)
    epochs = sum(h.get("seconds") or 0 for h in info["history"])
    return cell["module"], (None if trained else wall), epochs


def main():
    args = parse_args()
    import pipeline.configs.mini_zoo as mini_zoo
    from benchmark.runner.analysis_run import run_analyses
    from benchmark.runner.harness import run_benchmark

    workdir = args.workdir or tempfile.mkdtemp(prefix="benchmark_cost_")
    chexpert = f"chexpert:{args.chexpert}" if args.chexpert else None
    base = mini_zoo.get_config()
    matrix = base.replace(
        objectives=("softmax",),
        seeds=(0,),
        workdir=workdir,
        overrides={**base.overrides, "dataset": args.imagenette},
        transfer=args.cifar10,
        chexpert=chexpert,
    )
    try:
        module, wall, epochs = train(matrix, workdir)
        config = mini_zoo.benchmark_config(matrix)
        cache = tempfile.mkdtemp(prefix="cache_", dir=workdir)
        stages = []
        only = args.only.split(",") if args.only else None
        start = time.perf_counter()
        rows = run_benchmark(
            config,
            module,
            only=only,
            cache_dir=cache,
            timings=stages,
            report=lambda line: None,
        )
        bench = time.perf_counter() - start
        accounted = sum(s for _, s in stages)
        stages.append(("other (rows, checks)", bench - accounted))

        analysis = matrix.analysis(matrix)
        start = time.perf_counter()
        run_analyses(
            analysis,
            analysis.build(),
            [module],
            os.path.join(workdir, "analysis"),
            report=lambda line: None,
        )
        analyses = time.perf_counter() - start
        shutil.rmtree(cache)
        if args.full_transfer:
            full = full_transfer(config, module, cache)
            shutil.rmtree(cache)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    roots = {args.imagenette: "imagenette", args.cifar10: "cifar10"}
    if args.chexpert:
        roots[args.chexpert] = "nih_chexpert"

    def short(text):  # the data folders by name, not path
        for root, name in sorted(roots.items(), key=lambda r: -len(r[0])):
            text = text.replace(os.path.abspath(root), name).replace(root, name)
        return text.replace("imagefolder:", "")

    def line(label, seconds):
        print(f"{label:52s} {seconds:8.1f}")

    training = wall if wall is not None else epochs
    print(f"{'stage':52s} {'seconds':>8s}")
    for stage, seconds in stages:
        line("  " + short(stage), seconds)
    line("benchmark, total", bench)
    line("analyses (one module: CKA, sparsity, NC1 per block)", analyses)
    line("benchmark + analyses", bench + analyses)
    how = "wall" if wall is not None else "recorded epochs"
    line(f"training (baseline), {how}", training)
    line("  of which epochs", epochs)
    print(
        f"ratio benchmark / training: {bench / training:.2f} (epochs only: "
        f"{bench / epochs:.2f}); (benchmark + analyses) / training: "
        f"{(bench + analyses) / training:.2f}"
    )
    print_rows(rows, short)
    if args.full_transfer:
        stages, seconds, rows = full
        print("\nlinear probe and kNN on the whole transfer set (fresh cache):")
        for stage, took in stages:
            line("  " + short(stage), took)
        line("whole transfer set, total", seconds)
        line("  / training (baseline)", seconds / training)
        print_rows(rows, short)


def print_rows(rows, short):
    for row in rows:
        if "_ci_" in row["metric"] or "_exact_" in row["metric"]:
            continue
        sizes = f"test {row['test_size']}"
        if row["train_size"]:
            sizes = f"train {row['train_size']}, {sizes}"
        print(
            f"  {row['evaluation']:16s} {short(row['dataset']):14.14s} "
            f"{row['metric']:22.22s} {float(row['value']):.4f} ({sizes})"
        )


if __name__ == "__main__":
    main()
