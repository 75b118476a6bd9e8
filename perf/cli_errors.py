"""How fast a bad argument fails: zoo-benchmark with a typo in --config, a
missing --module, an unknown --input_normalization, against the baseline
of importing TensorFlow alone (what every error used to cost, since the
CLIs loaded it before checking their arguments).

Each round times the baseline and each bad command back to back; the script
prints the median wall time of each and its ratio to the baseline. A ratio
well under 1 means the argument was refused before TensorFlow loaded.

Command (about a minute on 2 shared CPU cores):
  .venv/bin/python perf/cli_errors.py

Measured (2 CPU cores, TF 2.21, 3 rounds, beside a running test suite):
import tensorflow 5.82 s; bad --config 0.18 s (ratio 0.03), missing --module
0.12 s (0.02), unknown --input_normalization 0.14 s (0.02). Before the
pre-TensorFlow check a bad --config took 9.3 s on the same machine under
load (TensorFlow and the evaluators were imported first).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

BAD = {
    "bad --config": ["--module=.", "--config=smok"],
    "missing --module": ["--module=/no/such/module"],
    "unknown --input_normalization": ["--module=.", "--input_normalization=rgb"],
}


def _time(argv, cwd):
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    return time.perf_counter() - start, done.returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env_python = sys.executable
    baseline = [env_python, "-c", "import tensorflow"]
    times = {"import tensorflow (baseline)": []}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(args.rounds):
            times["import tensorflow (baseline)"].append(_time(baseline, cwd)[0])
            for name, bad in BAD.items():
                seconds, code = _time(
                    [env_python, "-m", "benchmark.cli.benchmark", *bad], cwd
                )
                if code != 2:
                    sys.exit(f"{name} exited {code}, not 2: the check is broken")
                times.setdefault(name, []).append(seconds)
    base = statistics.median(times["import tensorflow (baseline)"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:32s} median {median:6.2f} s  ratio {median / base:5.2f}")
    print(f"({args.rounds} rounds, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
