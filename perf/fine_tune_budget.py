"""Fine-tuning budget of the mini-zoo benchmark: what a cheaper fine_tune
costs in accuracy. Trains (or reuses) mini-zoo modules of several
objectives (pipeline/configs/mini_zoo.py: ResNet-50 x1/4 at 32 px on
Imagenette, seed 0), then scores each with the mini-zoo config's fine_tune
evaluation as it is, or with --baseline's settings (the baseline), and with
each --variant's settings changed, in one process.

Prints per module and variant the test accuracy, the selected learning
rate, the evaluator's seconds and, against the baseline, the change in
accuracy and the gate's tolerance for it (benchmark.results.gate:
max(absolute, z x sqrt(2) x SE), SE the binomial standard error of the
baseline's test accuracy, as the gate judges a metric without per-example
outcomes). The last lines give each variant's seconds over the baseline's
and whether every module's accuracy stayed within that tolerance of the
baseline's, either way (exit 1 if a variant's did not): a cheaper protocol
must leave the numbers where they were, not only avoid drops.

Command (about 13 minutes on 2 CPU cores with three objectives to train):
  .venv/bin/python perf/fine_tune_budget.py --imagenette=DIR --cifar10=DIR \\
      [--objectives=softmax,cosine_softmax,squared_error] [--baseline=...] \\
      [--variant=steps=100 --variant=steps=75] [--workdir=DIR]
  A variant is KEY=VALUE[;KEY=VALUE...] of fine_tune settings (values as in
  --set: JSON, e.g. learning_rates=[0.01]).

Measured: see docs/benchmark_cost.md.
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imagenette", default="tfds:imagenette")
    parser.add_argument("--cifar10", default="tfds:cifar10")
    parser.add_argument("--objectives", default="softmax,cosine_softmax,squared_error")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        help="KEY=VALUE[;KEY=VALUE...] fine_tune settings (repeatable; "
        "default: steps=100 and steps=75)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="KEY=VALUE[;KEY=VALUE...] settings of the baseline (default: the "
        "config's fine_tune as it is)",
    )
    parser.add_argument("--workdir", default=None, help="default: a temporary one")
    args = parser.parse_args()
    from zoo.config_files import parse_value

    def settings(flag, text):
        pairs = [p.partition("=") for p in text.split(";")]
        if any(not key or not sep or not value for key, sep, value in pairs):
            parser.error(f"{flag} must be KEY=VALUE[;KEY=VALUE...], got {text!r}")
        return {key: parse_value(value) for key, _, value in pairs}

    variants = {"baseline": {}}
    if args.baseline:
        variants["baseline"] = settings("--baseline", args.baseline)
    for text in args.variant or ["steps=100", "steps=75"]:
        variants[text] = settings("--variant", text)
    args.variants = variants
    return args


def fine_tune_evaluation(config, settings):
    """Returns `config`'s fine_tune evaluation with `settings` changed."""
    (evaluation,) = [e for e in config.evaluations if e.evaluator == "fine_tune"]
    return dataclasses.replace(evaluation, settings={**evaluation.settings, **settings})


def main():
    args = parse_args()
    import pipeline.configs.mini_zoo as mini_zoo
    from benchmark.results.gate import DEFAULT_TOLERANCE
    from benchmark.runner.harness import run_benchmark
    from pipeline.matrix import run_matrix

    workdir = args.workdir or tempfile.mkdtemp(prefix="fine_tune_budget_")
    base = mini_zoo.get_config()
    matrix = base.replace(
        objectives=tuple(args.objectives.split(",")),
        seeds=(0,),
        workdir=workdir,
        overrides={**base.overrides, "dataset": args.imagenette},
        transfer=args.cifar10,
        chexpert=None,
    )
    cells = run_matrix(matrix, report=lambda line: None)
    config = mini_zoo.benchmark_config(matrix)
    z, absolute = DEFAULT_TOLERANCE["z"], DEFAULT_TOLERANCE["absolute"]
    print(f"{'module':32s} {'variant':22s} {'accuracy':>8s} {'lr':>6s} "
          f"{'seconds':>7s} {'change':>7s} {'tolerance':>9s}")  # fmt: skip
    seconds = {name: 0.0 for name in args.variants}
    within = {name: True for name in args.variants}
    for cell in cells:
        baseline = None
        for name, settings in args.variants.items():
            run = dataclasses.replace(
                config, evaluations=(fine_tune_evaluation(config, settings),)
            )
            start = time.perf_counter()
            (row,) = run_benchmark(run, cell["module"], report=lambda line: None)
            took = time.perf_counter() - start
            seconds[name] += took
            value, n = float(row["value"]), int(row["test_size"])
            lr = json.loads(row["selected"])["learning_rate"]
            change = tolerance = ""
            if baseline is None:
                baseline = value
                se = math.sqrt(baseline * (1 - baseline) / n)
                allowed = max(absolute, z * math.sqrt(2.0) * se)
            else:
                change, tolerance = f"{value - baseline:+.4f}", f"{allowed:.4f}"
                within[name] &= abs(value - baseline) <= allowed
            print(f"{cell['name']:32s} {name:22.22s} {value:8.4f} {lr:6.3g} "
                  f"{took:7.1f} {change:>7s} {tolerance:>9s}", flush=True)  # fmt: skip
    for name in list(args.variants)[1:]:
        print(
            f"{name}: fine_tune seconds / baseline's "
            f"{seconds[name] / seconds['baseline']:.2f}; every module's accuracy "
            f"within tolerance of the baseline: {'yes' if within[name] else 'NO'}"
        )
    return 0 if all(within.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
