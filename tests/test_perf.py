"""perf/train_loop.py runs end to end on a tiny digits run and prints the
lines its docstring promises (throughputs and ratios; no timing is asserted:
speed targets are read from the script's output, not from tests)."""

import re

import pytest


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
