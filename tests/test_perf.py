"""perf/train_loop.py, perf/gpu.sh and perf/linear_probe.py run end to end at
a tiny size and print the lines their docstrings promise (throughputs and
ratios; no timing is asserted: speed targets are read from the script's
output, not from tests)."""

import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_train_loop_benchmark_prints_both_loops_ablation_and_xla(warm):
    code = (
        "import runpy, sys; runpy.run_path('perf/train_loop.py', run_name='__main__')"
    )
    done = warm.run_code(
        code,
        "--epochs=2",
        "--rounds=1",
        "--max_per_class=30",
        "--modes=no_holdout",
        "--width_multiplier=0.0625",
        "--ablation",
        "--xla",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    fit = re.search(r"\[no_holdout\] keras Model.fit :\s+([\d.]+) images/s", out)
    ours = re.search(r"\[no_holdout\] zoo custom loop :\s+([\d.]+) images/s", out)
    plain = re.search(r"zoo loop, Keras's layers:\s+([\d.]+) images/s", out)
    conv = re.search(r"zoo loop, Keras's conv:\s+([\d.]+) images/s", out)
    xla = re.search(r"zoo loop with XLA:\s+([\d.]+) images/s", out)
    assert fit and ours and plain and conv and xla, out
    assert min(float(m.group(1)) for m in (fit, ours, plain, conv, xla)) > 0
    assert re.search(r"the 1x1 convolutions as matrix products x\d+\.\d\d", out)
    assert "x0.0625" in out  # the override reached the config
    assert re.search(r"ratios ours / fit: no_holdout \d+\.\d\d \(target >= 1\.1\)", out)


@pytest.mark.slow
def test_gpu_script_runs_on_cpu_at_a_tiny_size():
    """perf/gpu.sh --tiny: both training loops and the extraction loop run
    and the summary compares each with its published figure."""
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", "perf/gpu.sh", "--tiny"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"^device: no GPU \(.*\d+ cores\)$", out, re.M), out
    assert "precision float32, XLA off" in out  # the CPU defaults
    figures = re.findall(
        r"^(training, zoo trainer|training, Model.fit|inference, extraction): +"
        r"([\d.]+) images/s at batch 32 = ([\d.]+) x (NVIDIA A100|timm)",
        out,
        re.M,
    )
    assert [f[0] for f in figures] == [
        "training, zoo trainer",
        "training, Model.fit",
        "inference, extraction",
    ], out
    for _, rate, ratio, who in figures:
        published = 2500 if who == "NVIDIA A100" else 3000
        assert float(rate) > 0
        assert abs(float(ratio) - float(rate) / published) < 1e-3


def test_gpu_script_refuses_bad_arguments_in_one_line():
    for args, message in (
        (["--bogus"], "unknown argument '--bogus'"),
        (["--imagenette=/nonexistent"], "no image folder DIR/train"),
    ):
        done = subprocess.run(
            ["bash", "perf/gpu.sh", *args], capture_output=True, text=True,
            cwd=REPO, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr


def test_fine_tune_budget_refuses_a_malformed_variant_before_training():
    for variant in ("steps", "steps=", "=100", "steps=100;lr"):
        done = subprocess.run(
            [sys.executable, "perf/fine_tune_budget.py", f"--variant={variant}"],
            capture_output=True, text=True, cwd=REPO, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert "--variant must be KEY=VALUE" in done.stderr.splitlines()[-1]
        assert "Traceback" not in done.stderr


def test_linear_probe_benchmark_on_feature_files_with_and_without_preconditioner(
    tmp_path,
):
    """perf/linear_probe.py --features (real feature files, here written by
    the test) --compare_plain: both solvers, their test accuracies, the
    floor and its ratio; a bad --features is one line, exit 2."""
    import numpy as np

    rng = np.random.RandomState(0)
    files = []
    for split, n in (("train", 300), ("test", 100)):
        y = np.arange(n) % 3
        x = np.maximum(rng.randn(n, 16) + np.eye(16)[y] + 0.3, 0.0)
        path = tmp_path / f"{split}.npz"
        np.savez(path, features=x.astype(np.float32), labels=y)
        files.append(str(path))
    command = [sys.executable, "perf/linear_probe.py", "--num_l2", "5"]
    flags = [f"--features={','.join(files)}", "--skip_baseline", "--compare_plain"]
    done = subprocess.run(
        [*command, *flags],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "features: train 300 x 16, test 100, 3 classes; 5 lambdas" in out
    ours = re.search(
        r"ours +\(TF L-BFGS, float32\): +[\d.]+ s  test top-1 ([\d.]+)%", out
    )
    plain = re.search(
        r"ours without preconditioner: +[\d.]+ s  test top-1 ([\d.]+)%.* (\d+) "
        r"iterations; preconditioned is [\d.]+x faster",
        out,
    )
    assert ours and plain, out
    assert abs(float(ours.group(1)) - float(plain.group(1))) <= 2.0  # 2 of 100
    assert re.search(r"building preconditioners: [\d.]+ s; ratio ours / floor", out)
    bad = subprocess.run(
        [*command, "--features=only_one.npz", "--skip_baseline"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert bad.returncode == 2 and "--features: give two files" in bad.stderr
