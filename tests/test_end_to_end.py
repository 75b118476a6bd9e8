"""The whole pipeline: train -> export -> load the module back -> benchmark ->
leaderboard rows, on the embedded digits and on real images."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from benchmark.results import leaderboard
from pipeline.demo import DemoConfig, run_demo
from zoo.provenance import sha256_tree

PROVENANCE = (
    "handle",
    "module_sha256",
    "dataset",
    "split",
    "train_size",
    "test_size",
    "protocol",
    "code_version",
    "tf_version",
    "device",
    "timestamp",
    "seconds",
)

TINY = {"width_multiplier": 0.0625, "epochs": 1, "global_batch_size": 32}


def _check_rows(rows, objectives):
    assert {r["objective"] for r in rows} == set(objectives)
    for row in rows:
        for column in PROVENANCE:
            if column == "train_size" and row["evaluation"] == "class_separation":
                assert row[column] == ""  # R^2 fits nothing.
                continue
            assert row[column] != "", f"{column} empty in {row}"
        assert row["source"] == "measured"
        assert np.isfinite(float(row["value"]))
        json.loads(row["protocol"])
    for handle in {r["handle"] for r in rows}:
        hashes = {r["module_sha256"] for r in rows if r["handle"] == handle}
        assert hashes == {sha256_tree(handle)}


@pytest.mark.slow
def test_demo_on_embedded_digits(tmp_path):
    demo = DemoConfig(
        objectives=("softmax", "cosine_softmax"),
        workdir=str(tmp_path / "run"),
        overrides=dict(TINY, max_per_class=40),
        target_max_per_class=30,
    )
    lines = []
    rows, table = run_demo(demo, report=lines.append)
    written = leaderboard.read_rows(demo.leaderboard_path)
    assert len(written) == len(rows)
    _check_rows(written, demo.objectives)
    evaluations = {(r["evaluation"], r["dataset"]) for r in written}
    assert evaluations == {
        ("holdout", "digits_0to4"),
        ("linear_probe", "digits_5to9"),
        ("knn", "digits_5to9"),
        ("class_separation", "digits_5to9"),
        ("class_separation", "digits_0to4"),
    }
    assert any(line.startswith("[train] epoch 1/1") for line in lines)
    assert "softmax" in table and "cosine_softmax" in table
    # the module loads back and gives the features the benchmark used
    handle = written[0]["handle"]
    module = tf.saved_model.load(handle)
    assert module(tf.zeros([2, 32, 32, 3])).shape == (2, 128)
    # appending the same measurements again replaces rows instead of duplicating
    leaderboard.append_rows(demo.leaderboard_path, rows)
    assert len(leaderboard.read_rows(demo.leaderboard_path)) == len(rows)


@pytest.mark.slow
def test_demo_on_real_images(tmp_path, shared_data):
    demo = DemoConfig(
        objectives=("softmax",),
        source=str(shared_data / "imagenette"),
        target=str(shared_data / "cifar10"),
        workdir=str(tmp_path / "run"),
        overrides=dict(
            TINY,
            max_per_class=24,
            holdout_fraction=0.2,
            crop_area_range=(0.08, 1.0),
            random_flip=True,
        ),
        target_max_per_class=12,
    )
    rows, _ = run_demo(demo, report=lambda line: None)
    _check_rows(rows, demo.objectives)
    probe = [r for r in rows if r["evaluation"] == "linear_probe"]
    assert len(probe) == 1
    cifar = os.path.abspath(shared_data / "cifar10")
    assert probe[0]["dataset"] == f"imagefolder:{cifar}"
    assert probe[0]["split"] == "train->test"
    assert int(probe[0]["train_size"]) == 120 and int(probe[0]["test_size"]) == 120
