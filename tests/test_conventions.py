"""Modules of every common convention, written here without the project's
export code, load with only the documented flags and are scored by
zoo-benchmark: a tf_keras model (size only in `__call__`'s signature), a Keras
3 `model.export()` artifact, a uint8 module, a dict-output module and a
fixed-size tf.Module."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from benchmark.modules.loading import DEFAULT_IMAGE_SIZE, ModuleError, load_module
from benchmark.results import leaderboard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 3 x 3 grid of mean colours: 27 informative features for digits.
GRID = 3


def _grid_features(images):
    """Returns [b, 27] mean colours of a 3 x 3 grid of cells of float images."""
    pooled = tf.image.resize(images, [GRID, GRID], method="area")
    return tf.reshape(pooled, [tf.shape(images)[0], GRID * GRID * 3])


def _tf_keras_model(path):
    """A tf_keras functional model with a fixed 32 x 32 input, saved as a
    SavedModel: its size is declared only by `__call__`'s input signature."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((32, 32, 3))
    x = tf_keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = tf_keras.layers.BatchNormalization()(x)
    outputs = tf_keras.layers.Concatenate()(
        [
            tf_keras.layers.GlobalAveragePooling2D()(x),
            tf_keras.layers.Flatten()(tf_keras.layers.AveragePooling2D(10)(inputs)),
        ]
    )
    tf_keras.Model(inputs, outputs).save(path, save_format="tf")


def _keras3_export(path):
    """A Keras 3 model written by `model.export()` (a `serve` endpoint and a
    `serving_default` signature returning {"output_0": ...})."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    outputs = keras.layers.Concatenate()(
        [
            keras.layers.GlobalAveragePooling2D()(x),
            keras.layers.Flatten()(keras.layers.AveragePooling2D(10)(inputs)),
        ]
    )
    keras.Model(inputs, outputs).export(path, verbose=False)


def _uint8_module(path):
    """A tf.Module taking uint8 images of any size in [0, 255]; no metadata."""
    module = tf.Module()
    module.__call__ = tf.function(
        lambda images: _grid_features(tf.cast(images, tf.float32) / 255.0),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
    )
    tf.saved_model.save(module, path)


def _dict_module(path):
    """A tf.Module returning {"pooled": [b, 27], "spatial": [b, h, w, 3]}."""
    module = tf.Module()
    module.__call__ = tf.function(
        lambda images: {"pooled": _grid_features(images), "spatial": images},
        input_signature=[tf.TensorSpec([None, 24, 24, 3], tf.float32)],
    )
    tf.saved_model.save(module, path)


def _fixed_size_module(path):
    """A tf.Module whose `__call__` accepts only [None, 24, 24, 3] float32."""
    module = tf.Module()
    module.__call__ = tf.function(
        _grid_features, input_signature=[tf.TensorSpec([None, 24, 24, 3], tf.float32)]
    )
    tf.saved_model.save(module, path)


WRITERS = {
    "tf_keras": _tf_keras_model,
    "keras3_export": _keras3_export,
    "uint8": _uint8_module,
    "dict_output": _dict_module,
    "fixed_size": _fixed_size_module,
}
# The only flags each convention needs (the documented ones).
FLAGS = {"dict_output": ["--output=pooled"]}
# What the loader must discover: (signature, size, size source, dtype, range).
CONTRACTS = {
    "tf_keras": ("__call__", 32, "signature", "float32", [0.0, 1.0]),
    "keras3_export": ("serving_default", 32, "signature", "float32", [0.0, 1.0]),
    "uint8": ("__call__", DEFAULT_IMAGE_SIZE, "default", "uint8", [0.0, 255.0]),
    "dict_output": ("__call__", 24, "signature", "float32", [0.0, 1.0]),
    "fixed_size": ("__call__", 24, "signature", "float32", [0.0, 1.0]),
}


@pytest.fixture(scope="module")
def conventions(tmp_path_factory):
    """Returns {name: SavedModel dir} of every convention, written once."""
    root = tmp_path_factory.mktemp("conventions")
    paths = {}
    for name, write in WRITERS.items():
        paths[name] = str(root / name)
        write(paths[name])
    return paths


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_the_contract_is_discovered(conventions, name):
    output = "pooled" if name == "dict_output" else None
    module = load_module(conventions[name], output=output)
    contract = module.contract()
    got = tuple(
        contract[k]
        for k in (
            "signature",
            "image_size",
            "size_source",
            "input_dtype",
            "value_range",
        )
    )
    assert got == CONTRACTS[name]
    assert contract["feature_dim"] > 0


def test_uint8_modules_get_rounded_integers_in_0_255(conventions):
    module = load_module(conventions["uint8"])
    images = tf.random.stateless_uniform([2, 9, 9, 3], seed=[3, 4])
    expected = _grid_features(tf.round(images * 255.0) / 255.0)
    np.testing.assert_allclose(module(images), expected, atol=1e-6)
    assert module.prepare(images).dtype == tf.uint8


def test_a_dict_output_needs_output_and_names_its_keys(conventions):
    with pytest.raises(ModuleError, match="pass --output=NAME naming") as error:
        load_module(conventions["dict_output"])
    assert "pooled [4, 27], spatial [4, 24, 24, 3]" in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(ModuleError, match="not \\[batch, features\\]"):
        load_module(conventions["dict_output"], output="spatial")
    with pytest.raises(ModuleError, match="no output 'nope'.*pooled, spatial"):
        load_module(conventions["dict_output"], output="nope")


def test_a_fixed_size_module_refuses_other_sizes_in_one_line(conventions):
    with pytest.raises(ModuleError, match="fails on a float32 \\[4, 30, 30, 3\\]"):
        load_module(conventions["fixed_size"], image_size=30)


@pytest.mark.slow  # Five zoo-benchmark runs.
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_convention_is_scored_by_zoo_benchmark(conventions, name, tmp_path, warm):
    board = tmp_path / "board.csv"
    result = warm.run(
        "benchmark.cli.benchmark",
        f"--module={conventions[name]}",
        "--config=smoke",
        "--evaluations=linear_probe,knn,class_separation",
        f"--leaderboard={board}",
        f"--cache_dir={tmp_path / 'cache'}",
        *FLAGS.get(name, []),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = leaderboard.read_rows(str(board))
    values = {r["evaluation"]: float(r["value"]) for r in rows}
    print(name, {k: round(v, 4) for k, v in values.items()})
    assert set(values) == {"linear_probe", "knn", "class_separation"}
    # Digits 5-9: chance is 0.2; a 3 x 3 grid of colours is far above it.
    assert values["linear_probe"] > 0.5 and values["knn"] > 0.5
    protocol = json.loads(rows[0]["protocol"])
    assert protocol["input"]["size_source"] == CONTRACTS[name][2]
    assert protocol["input"]["image_size"] == CONTRACTS[name][1]
