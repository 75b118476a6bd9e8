"""Entry points: --help works, and bad input gives a one-line error, a non-zero
exit and writes nothing.

The console scripts run as fresh processes for --help and for one error
(whose stderr must be that line alone: TensorFlow's start-up chatter stays
out); the other cases run their entry point in the warm Python of
tests/warm.py, which is the same `run()` without the TensorFlow start-up."""

import importlib.metadata
import os
import subprocess
import sys

import pytest

BIN = os.path.dirname(sys.executable)


# console script -> module whose run() it calls (from the installed metadata)
ENTRY_POINTS = {
    e.name: e.value.split(":")[0]
    for e in importlib.metadata.entry_points(group="console_scripts")
    if e.name.startswith("zoo-")
}


def run(command, *args, cwd=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [os.path.join(BIN, command), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize(
    "command",
    [
        "zoo-demo",
        "zoo-train",
        "zoo-export",
        "zoo-benchmark",
        "zoo-leaderboard",
        "zoo-matrix",
        "zoo-pull",
        "zoo-analyze",
        "zoo-submit",
        "zoo-reproduce",
    ],
)
def test_help(command):
    assert command in ENTRY_POINTS
    result = run(command, "--help")
    assert result.returncode == 0
    assert "Flags:" in result.stdout and "--" in result.stdout
    assert "Example" in result.stdout or "With no flags" in result.stdout


def test_benchmark_help_lists_the_configs():
    from benchmark.configs import list_configs

    result = run("zoo-benchmark", "--help")
    assert {"smoke", "local", "paper"} <= set(list_configs())
    assert f"one of {', '.join(list_configs())}" in " ".join(result.stdout.split())
    assert "--set" in result.stdout and "--output" in result.stdout


@pytest.mark.parametrize(
    "flag,fragments",
    [
        ("--objectives=softmax,bogus", ("unknown objective 'bogus'", "softmax")),
        ("--arch=resnet51", ("unknown architecture 'resnet51'",)),
        ("--target=bogus_set", ("unknown dataset 'bogus_set'", "digits_5to9")),
        ("--source=/nonexistent/images", ("/nonexistent/images", "not found")),
        ("--config=nope", ("unknown config 'nope'",)),
    ],
)
def test_demo_bad_input_writes_nothing(tmp_path, warm, flag, fragments):
    workdir = tmp_path / "run"
    result = warm.run(ENTRY_POINTS["zoo-demo"], flag, f"--workdir={workdir}")
    assert_one_line_error(result, *fragments)
    assert not workdir.exists()


def test_demo_rejects_an_image_folder_with_an_empty_class(tmp_path, warm):
    import numpy as np
    import tensorflow as tf

    root = tmp_path / "folder"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            if not (split == "train" and cls == "b"):
                png = tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)).numpy()
                (root / split / cls / "0.png").write_bytes(png)
    workdir = tmp_path / "run"
    result = warm.run(
        ENTRY_POINTS["zoo-demo"], f"--target={root}", f"--workdir={workdir}"
    )
    assert_one_line_error(result, "class 'b'", "no images")
    assert not workdir.exists()


def test_benchmark_rejects_a_directory_that_is_not_a_savedmodel(tmp_path):
    board = tmp_path / "board.csv"
    result = run("zoo-benchmark", f"--module={tmp_path}", f"--leaderboard={board}")
    assert_one_line_error(result, "not a SavedModel")
    assert not board.exists()
    # A fresh process: TensorFlow's start-up lines stay out, stderr is the error.
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_leaderboard_with_a_foreign_header_is_refused(tmp_path, warm):
    board = tmp_path / "board.csv"
    board.write_text("model,top1\nx,1\n")
    result = warm.run(ENTRY_POINTS["zoo-leaderboard"], f"--leaderboard={board}")
    assert_one_line_error(result, "foreign header")
    assert board.read_text() == "model,top1\nx,1\n"


def test_export_rejects_a_path_that_is_not_a_checkpoint(tmp_path, warm):
    out = tmp_path / "module"
    result = warm.run(
        ENTRY_POINTS["zoo-export"], f"--checkpoint={tmp_path}", f"--out={out}"
    )
    assert_one_line_error(result, "not a training checkpoint")
    assert not out.exists()


def test_a_too_small_image_for_inception_names_the_minimum(tmp_path, warm):
    result = warm.run(
        ENTRY_POINTS["zoo-matrix"],
        "--config=digits",
        "--archs=inception_v3",
        f"--workdir={tmp_path / 'matrix'}",
    )
    assert result.returncode == 2
    assert_one_line_error(
        result, "inception_v3 needs images of at least 75 px", "--image_size=75"
    )
    assert "File " not in result.stderr and not (tmp_path / "matrix").exists()


@pytest.mark.parametrize(
    "flag, fragment",
    [
        ("--base_learning_rate=-0.1", "base_learning_rate must be a finite number > 0"),
        ("--base_learning_rate=1e9", "such a run diverges"),
        ("--objective_hparams=[1,2]", "must be a JSON object"),
    ],
)
def test_train_refuses_learning_rates_that_cannot_work(tmp_path, warm, flag, fragment):
    workdir = tmp_path / "run"
    result = warm.run(
        ENTRY_POINTS["zoo-train"], "--config=digits", f"--workdir={workdir}", flag
    )
    assert result.returncode == 2
    assert_one_line_error(result, fragment)
    assert "Traceback" not in result.stderr and not workdir.exists()


def test_a_run_whose_loss_explodes_stops_naming_the_step(tmp_path, warm):
    """A learning rate inside the accepted range can still diverge: the run
    stops at the first call whose loss passes 100x its first loss (or is not
    finite), with one line naming the step, instead of training on."""
    workdir = tmp_path / "run"
    result = warm.run(
        ENTRY_POINTS["zoo-train"],
        "--config=digits",
        f"--workdir={workdir}",
        "--base_learning_rate=90",
        "--epochs=2",
        "--max_per_class=30",
    )
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and " at step " in errors[0], result.stderr
    assert "exploded" in errors[0] or "loss became" in errors[0]
    assert not (workdir / "train_info.json").exists()  # not exportable as done
