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
  zoo-benchmark --request=run.json    # a stored run request (a bundle's manifest)

A config (a name: local, paper, smoke; or a .py file defining get_config())
names the evaluators, their
data and settings; --set=KEY=VALUE overrides a config field (max_per_class=50,
datasets=a,b) or an evaluator setting (EVALUATOR.ARG=VALUE, the value read as
JSON when it parses); each config's docstring gives its command and
expected result (python -m pydoc benchmark.configs.smoke). A module is a
SavedModel directory (the authors' release format is detected), a .keras or
full-model .h5 file, a .tar.gz archive, a catalog name or an http(s)/gs://
URL, fetched into tensorflow_hub's cache (TFHUB_CACHE_DIR) within
--max_module_mb and --download_deadline_s and rehashed on every use. Its
input size, dtype and normalisation come from what it declares
(--image_size, --input_normalization, --value_range, --signature and
--output override them). Every row
carries the model's parameters, GMACs, size and throughput and a protocol
fingerprint. Modules holding
any op outside the allowlist of pure image-module ops are refused before
anything runs. An evaluator that needs what the module lacks (logits,
fine-tuning) is skipped with a note; each evaluator's rows are appended when
it finishes. The flags make one run request (benchmark.runner.request), the
same as zoo-submit's and `benchmark.evaluate`'s; --request runs a stored one.
"""

import os
import sys

from absl import flags

from benchmark.cli import run_flags
from benchmark.cli.run_flags import define_flags, from_flags
from export import flags as fetch_flags
from zoo.cli import run_main

FLAGS = flags.FLAGS
define_flags()
flags.adopt_module_key_flags(fetch_flags)
flags.adopt_module_key_flags(run_flags)
flags.DEFINE_list(
    "modules",
    None,
    "A plan instead of one --module: every module x dataset x evaluation of the "
    "config becomes one job writing its own bundle under --bundle_root.",
)
flags.DEFINE_string("shard", None, "Run only shard I/N of the plan's jobs (0-based I).")
flags.DEFINE_string("bundle_root", None, "Folder of the plan's job bundles.")
flags.DEFINE_string(
    "baseline",
    None,
    "CI gate: compare the run with this baseline JSON (benchmark.results.gate); exit 0 "
    "within tolerance, 1 regression, 2 bad input, 3 module/data unreachable, 4 "
    "metrics missing on one side.",
)
flags.DEFINE_bool(
    "update_baseline", False, "Write --baseline when the run passes or none exists."
)
flags.DEFINE_string("junit", None, "CI gate: write a JUnit XML report here.")
flags.DEFINE_string(
    "benchmark_json", None, "CI gate: write github-action-benchmark JSON here."
)


def main(argv):
    del argv
    from benchmark.modules import sandbox
    from benchmark.results import leaderboard
    from benchmark.runner.execute import execute

    request = from_flags(FLAGS)
    if FLAGS.modules or FLAGS.shard:
        from benchmark.runner.plan import run_plan

        run_plan(request, FLAGS.modules, FLAGS.shard, FLAGS.bundle_root)
        return None
    if FLAGS.baseline:
        return gate_main(request, FLAGS.baseline)
    rows = execute(request, report=lambda line: print(line, flush=True))
    if os.environ.get(sandbox.ENV_TOOL):
        return  # The sandboxed child: its parent appends and summarises.
    print()
    print(leaderboard.summary_table(rows))
    if request.leaderboard:
        print(f"\n{len(rows)} rows appended to {request.leaderboard}")
    if request.bundle:
        print(f"results bundle: {request.bundle}")


def gate_main(request, baseline_path):
    """Runs the benchmark (writing a bundle for its per-example outcomes),
    judges it against the baseline at `baseline_path` and exits with the
    gate's code."""
    import tempfile

    from benchmark.runner.execute import precheck

    precheck(request)  # before TensorFlow loads
    from benchmark.data.transfer import DatasetError
    from benchmark.modules.loading import ModuleError
    from benchmark.results import bundle, gate
    from benchmark.runner.execute import check, execute
    from export.fetch import FetchError

    check(request, request.load_config())  # bad input is 2, before the gate's codes
    # No baseline yet and --update_baseline: this run writes the first one.
    first = FLAGS.update_baseline and not os.path.exists(baseline_path)
    baseline = None if first else gate.load_baseline(baseline_path)
    for path in (FLAGS.junit, FLAGS.benchmark_json):
        if path and os.path.isdir(path):
            raise ValueError(f"{path} is a folder; pass a file name")
    with tempfile.TemporaryDirectory() as tmp:
        target = request.bundle or os.path.join(tmp, "bundle")
        try:
            execute(
                request.replace(bundle=target),
                report=lambda line: print(line, flush=True),
            )
        except (ModuleError, FetchError, DatasetError) as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            sys.exit(gate.UNREACHABLE)
        made = bundle.read(target)
    metrics = gate.run_metrics(made.rows, made.predictions)
    if baseline is None:
        gate.write_baseline(baseline_path, metrics, made.manifest)
        print(f"baseline written to {baseline_path} ({len(metrics)} metrics)")
        return
    judgements = gate.judge(baseline, metrics)
    code = gate.exit_code(judgements)
    report_gate(judgements)
    if code == gate.PASS and FLAGS.update_baseline:
        gate.write_baseline(baseline_path, metrics, made.manifest)
        print(f"baseline updated: {baseline_path}")
    failing = [j for j in judgements if j.verdict != "pass"]
    for j in failing:
        print(f"error: {j.message()}", file=sys.stderr)
    print(f"gate: {len(judgements) - len(failing)}/{len(judgements)} metrics pass")
    sys.exit(code)


def report_gate(judgements):
    """Writes the JUnit, step-summary and benchmark-JSON reports and prints
    GitHub ::error annotations for failing metrics."""
    import json

    from benchmark.results import gate
    from zoo.files import write_atomic

    if FLAGS.junit:
        write_atomic(FLAGS.junit, gate.junit_xml(judgements))
    if FLAGS.benchmark_json:
        write_atomic(
            FLAGS.benchmark_json, json.dumps(gate.benchmark_json(judgements), indent=1)
        )
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(gate.step_summary(judgements))
    if os.environ.get("GITHUB_ACTIONS"):
        for j in judgements:
            if j.verdict != "pass":
                print(f"::error title=benchmark regression::{j.message()}")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
