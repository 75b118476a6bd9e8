"""The sandbox's cost on a benign module: zoo-benchmark with --sandbox=off
(baseline, in one process) against --sandbox=require (a child under
bubblewrap or unshare), the same command otherwise.

Each round runs both commands back to back (the order alternating), each
with a fresh feature cache so extraction is measured too; the script prints
the wall time of each and the median ratio sandboxed / in-process. The module
is a randomly initialised zoo ResNet-50 (width --width, --image_size px,
saved by perf/extract.py's helper) scored by the smoke config's linear probe
and kNN on the embedded digits. What the sandbox adds is a second Python and
TensorFlow start-up plus the parent's dataset check; the forward passes run
at the same speed inside.

Command (about 3 minutes on 2 shared CPU cores):
  .venv/bin/python perf/sandbox.py

Measured (2 CPU cores, TF 2.21, bubblewrap 0.8, width 0.25 at 64 px, 3
rounds, with each run's file-system view): in-process 14.0-16.9 s,
sandboxed 20.6-24.9 s, median ratio 1.467 (1.475 before the view). The
difference, about 7 s, is fixed per command (the child's Python and
TensorFlow start-up and the parent's dataset check), so the ratio tends to 1
as the benchmark grows: on the paper config's hours it is noise.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(module, mode, work, image_size):
    board = os.path.join(work, f"board_{mode}.csv")
    cache = tempfile.mkdtemp(dir=work, prefix=f"cache_{mode}_")
    cmd = [
        sys.executable,
        "-m",
        "benchmark.cli.benchmark",
        f"--module={module}",
        "--config=smoke",
        "--evaluations=linear_probe,knn",
        f"--image_size={image_size}",
        f"--leaderboard={board}",
        f"--cache_dir={cache}",
        f"--sandbox={mode}",
    ]
    start = time.perf_counter()
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{mode} run failed: {result.stderr.strip().splitlines()[-1:]}")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--image_size", type=int, default=64)
    args = parser.parse_args(argv)

    from extract import save_random_resnet50

    from benchmark.modules import sandbox

    tool = sandbox.available_tool()
    if tool is None:
        sys.exit("no sandbox tool works here (install bubblewrap); nothing to measure")
    with tempfile.TemporaryDirectory() as work:
        module = os.path.join(work, "module")
        save_random_resnet50(module, args.width, args.image_size)
        ratios = []
        for i in range(args.rounds):
            order = ("off", "require") if i % 2 == 0 else ("require", "off")
            times = {
                mode: run_once(module, mode, work, args.image_size) for mode in order
            }
            ratios.append(times["require"] / times["off"])
            print(
                f"round {i + 1}: in-process {times['off']:.1f} s, "
                f"{tool} sandbox {times['require']:.1f} s, "
                f"ratio {ratios[-1]:.3f}",
                flush=True,
            )
    print(
        f"sandbox ({tool}) / in-process (baseline) wall time, median of "
        f"{args.rounds}: {statistics.median(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
