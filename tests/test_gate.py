"""The CI gate (benchmark.results.gate, zoo-benchmark --baseline) on real modules
and real runs: a run against its own baseline passes; a raised baseline value
fails naming the metric in JUnit; a module whose features are slightly
degraded (a wrapper adding deterministic noise) is caught by the paired test
while an unpaired test on the same examples would let it through; a missing
metric exits 4; an unreachable module exits 3."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tensorflow as tf

from benchmark.results import gate

# One worker runs this file, so its module fixtures are built once
# (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("gate")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
RUN = ["--evaluations=linear_probe,knn", "--image_size=16"]
RUN += ["--sandbox=off", "--leaderboard="]
SMOKE = ["--config=smoke"]


class Features(tf.Module):
    """Random ReLU features (256) of a 6 x 6 thumbnail; `zeroed` sets the
    first features to 0: the same module with less information, so it gets
    fewer examples right, the rest the same ones."""

    def __init__(self, zeroed=0):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([108, 256], seed=[7, 7]))
        self.keep = tf.constant(np.arange(256) >= zeroed, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        x = tf.reshape(tf.image.resize(images, [6, 6]), [-1, 108])
        return tf.nn.relu(tf.matmul(x, self.w)) * self.keep


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate_modules")
    out = {}
    for name, zeroed in (("clean", 0), ("degraded", 236)):
        out[name] = str(root / name)
        tf.saved_model.save(Features(zeroed), out[name])
    return out


def _bench(warm, *args):
    config = [] if any(a.startswith("--config=") for a in args) else SMOKE
    return warm.run("benchmark.cli.benchmark", *RUN, *config, *args, env=ENV)


@pytest.fixture(scope="module")
def baseline(modules, tmp_path_factory, warm):
    path = tmp_path_factory.mktemp("gate") / "baseline.json"
    made = _bench(
        warm, f"--module={modules['clean']}", f"--baseline={path}", "--update_baseline"
    )
    assert made.returncode == 0, made.stderr
    return path


def test_a_run_against_its_own_baseline_passes_and_is_deterministic(
    modules, baseline, tmp_path, warm
):
    data = json.loads(baseline.read_text())
    assert {m["evaluation"] for m in data["metrics"]} == {"linear_probe", "knn"}
    assert all(len(m["outcomes"]) == 179 for m in data["metrics"])  # digits 5-9 test
    junit = tmp_path / "junit.xml"
    bench_json = tmp_path / "bench.json"
    summary = tmp_path / "summary.md"
    run = warm.run(
        "benchmark.cli.benchmark",
        *RUN,
        *SMOKE,
        f"--module={modules['clean']}",
        f"--baseline={baseline}",
        f"--junit={junit}",
        f"--benchmark_json={bench_json}",
        env={**ENV, "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert run.returncode == 0, run.stderr
    assert "gate: 2/2 metrics pass" in run.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    entries = json.loads(bench_json.read_text())
    assert {e["name"] for e in entries} == {
        "knn/digits_5to9/train->test/accuracy",
        "linear_probe/digits_5to9/train->test/accuracy",
    }
    # Same machine, same code: the values are identical, not merely close.
    values = {e["name"]: e["value"] for e in entries}
    for m in json.loads(baseline.read_text())["metrics"]:
        assert values["/".join(gate.metric_key(m))] == m["value"]
    assert "| knn/digits_5to9/train->test/accuracy |" in summary.read_text()


def test_a_raised_baseline_value_fails_naming_the_metric(
    modules, baseline, tmp_path, warm
):
    data = json.loads(baseline.read_text())
    knn = next(m for m in data["metrics"] if m["evaluation"] == "knn")
    knn["value"] += 0.2
    raised = tmp_path / "raised.json"
    raised.write_text(json.dumps(data))
    junit = tmp_path / "junit.xml"
    run = _bench(
        warm, f"--module={modules['clean']}", f"--baseline={raised}", f"--junit={junit}"
    )
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "knn/digits_5to9/train->test/accuracy" in errors[0]
    failed = [
        c
        for c in ET.parse(junit).getroot().iter("testcase")
        if c.find("failure") is not None
    ]
    assert [c.get("name") for c in failed] == ["knn/digits_5to9/train->test/accuracy"]
    message = failed[0].find("failure").get("message")
    assert "baseline" in message and "tolerance" in message and "value" in message
    assert not (tmp_path / "raised.json.tmp").exists()


def test_degraded_features_are_caught_by_the_paired_test_only(
    modules, shared_data, tmp_path, warm
):
    """On 1,000 CIFAR-10 test images: the degraded module's drop exceeds 3
    paired standard errors (caught, exit 1) but not 3 unpaired ones (an
    unpaired test on the same examples would pass it). Numbers printed."""
    cifar = ["--config=local", f"--datasets={shared_data / 'cifar10'}"]
    cifar += ["--max_per_class=100", f"--cache_dir={tmp_path / 'cache'}"]
    cifar += ["--set=linear_probe.num_l2=9"]  # a 9-point sweep: 5x fewer fits
    base = tmp_path / "cifar_baseline.json"
    made = _bench(
        warm,
        *cifar,
        f"--module={modules['clean']}",
        f"--baseline={base}",
        "--update_baseline",
    )
    assert made.returncode == 0, made.stderr
    bundle_dir = tmp_path / "bundle"
    run = _bench(
        warm,
        *cifar,
        f"--module={modules['degraded']}",
        f"--baseline={base}",
        f"--bundle={bundle_dir}",
    )
    assert run.returncode == 1, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    from benchmark.results import bundle

    made = bundle.read(str(bundle_dir))
    metrics = {
        gate.metric_key(m): m for m in gate.run_metrics(made.rows, made.predictions)
    }
    caught = 0
    for m in json.loads(base.read_text())["metrics"]:
        key = gate.metric_key(m)
        r = metrics[key]
        drop = m["value"] - r["value"]
        paired, n = gate.paired_stderr(r["outcomes"], m["outcomes"])
        unpaired = gate.unpaired_stderr(r["outcomes"], m["outcomes"])
        z = gate.DEFAULT_TOLERANCE["z"]
        print(
            f"{key[0]}: {m['value']:.3f} -> {r['value']:.3f}, drop {drop:.4f}; "
            f"3 x paired SE {z * paired:.4f}, "
            f"3 x unpaired SE {z * unpaired:.4f} (n {n})"
        )
        if drop > z * paired:
            caught += 1
            assert drop <= z * unpaired  # an unpaired test would have passed it
            assert any(key[0] in line for line in lines)
    assert caught >= 1


def test_a_missing_metric_exits_4_and_an_unreachable_module_3(
    modules, baseline, tmp_path, warm
):
    data = json.loads(baseline.read_text())
    data["metrics"].append(dict(data["metrics"][0], dataset="cifar10"))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(data))
    run = _bench(warm, f"--module={modules['clean']}", f"--baseline={extra}")
    assert run.returncode == 4
    assert "cifar10" in run.stderr and "not measured" in run.stderr
    gone = _bench(
        warm, "--module=http://127.0.0.1:9/nothing.tar.gz", f"--baseline={baseline}"
    )
    assert gone.returncode == 3, gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1
    missing = _bench(
        warm, f"--module={modules['clean']}", f"--baseline={tmp_path / 'no.json'}"
    )
    assert missing.returncode == 2 and "--update_baseline" in missing.stderr


def test_the_gate_judges_each_metric_on_its_own():
    rng = np.random.default_rng(0)
    base = {str(i): int(rng.random() < 0.8) for i in range(1000)}
    same = dict(base)
    worse = {i: (0 if int(i) % 25 == 0 else v) for i, v in base.items()}  # -3 points
    baseline = {
        "metrics": [
            {
                "evaluation": "a",
                "dataset": "d",
                "split": "s",
                "metric": "accuracy",
                "value": 0.8,
                "outcomes": base,
            },
            {
                "evaluation": "b",
                "dataset": "d",
                "split": "s",
                "metric": "accuracy",
                "value": 0.8,
                "outcomes": base,
            },
        ]
    }
    metrics = [
        {
            "evaluation": "a",
            "dataset": "d",
            "split": "s",
            "metric": "accuracy",
            "value": 0.9,
            "direction": "higher",
            "outcomes": same,
        },
        {
            "evaluation": "b",
            "dataset": "d",
            "split": "s",
            "metric": "accuracy",
            "value": 0.77,
            "direction": "higher",
            "outcomes": worse,
        },
    ]
    verdicts = {j.key[0]: j.verdict for j in gate.judge(baseline, metrics)}
    assert verdicts == {"a": "pass", "b": "regression"}  # a's gain hides nothing


def test_the_workflow_file_passes_the_github_workflow_schema(tmp_path):
    """The copyable workflow validates against GitHub's workflow schema (the
    copy check-jsonschema ships, so no network), and the check can fail."""
    tool = os.path.join(os.path.dirname(sys.executable), "check-jsonschema")
    workflow = os.path.join(REPO, ".github", "workflows", "benchmark.yml")
    args = [tool, "--builtin-schema", "vendor.github-workflows"]
    ok = subprocess.run([*args, workflow], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(open(workflow).read().replace("runs-on:", "runs_on:"))
    bad = subprocess.run([*args, str(broken)], capture_output=True, text=True)
    assert bad.returncode != 0
    text = open(workflow).read()
    assert "--baseline=" in text and "--junit=" in text and "upload-artifact" in text
