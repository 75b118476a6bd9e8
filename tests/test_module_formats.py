"""Module formats scored as they are (docs/evaluations.md, "Module formats"):
the authors' release format detected from the folder, Keras files and
in-memory Keras models, input normalisations, squeezed outputs, and the one
line that refuses what matches no convention."""

import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import benchmark
from benchmark.modules import keras_files
from benchmark.modules import loading as modules
from benchmark.modules.loading import ModuleError
from export import normalization
from export.importer import import_authors_module
from tests.test_importer import (
    AUTHORS_INPUTS,
    CHANNELS,
    IMAGES,
    _standin_outputs,
    _tf1_standin,
    _weights,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "benchmark.cli.benchmark", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=600,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
    )


def _error_line(*args):
    """Returns the one stderr line of a zoo-benchmark run that must fail."""
    done = _cli(*args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1, done.stderr
    return lines[0]


# ------------------------------------------------------- the authors' release


@pytest.fixture(scope="module")
def authors_release(tmp_path_factory):
    """A TF1 SavedModel in the authors' release format, written with plain
    TF1 APIs (none of the project's export code)."""
    path = str(tmp_path_factory.mktemp("release") / "softmax_seed0")
    _tf1_standin(path, _weights(seed=3))
    return path


def test_the_authors_release_is_detected_and_scored_as_the_import_is(
    authors_release, tmp_path
):
    module = modules.load_module(authors_release)
    contract = module.contract()
    assert contract["format"] == "authors_release"
    assert contract["input_normalization"] == "imagenet_mean_std"
    assert contract["normalization_source"] == "authors' release format"
    assert (contract["signature"], contract["output"]) == (
        "serving_default",
        "final_avg_pool",
    )
    assert module.feature_dim == CHANNELS and module.image_size == 224
    expected = _standin_outputs(authors_release, AUTHORS_INPUTS["imagenet_mean_std"])
    np.testing.assert_allclose(
        module.features(IMAGES),
        expected["final_avg_pool"].reshape(len(IMAGES), CHANNELS),
        rtol=1e-5,
    )
    # The catalog's import path gives the same features and logits.
    imported, _ = import_authors_module(
        authors_release, str(tmp_path / "imported"), loss="softmax", seed=0
    )
    via_import = modules.load_module(imported)
    np.testing.assert_allclose(
        module.features(IMAGES), via_import.features(IMAGES), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        module.logits(IMAGES), via_import.logits(IMAGES), rtol=1e-5, atol=1e-5
    )
    assert module.logits(IMAGES).shape == (len(IMAGES), 1000)
    assert {"block1", "final_avg_pool", "logits"} <= set(module.endpoint_names())
    assert module.fine_tuning_problem()  # a frozen TF1 graph: skipped with a note


@pytest.mark.slow
def test_zoo_benchmark_scores_the_release_folder_with_no_module_flag(
    authors_release, tmp_path
):
    board = tmp_path / "rows.csv"
    done = _cli(
        f"--module={authors_release}",
        f"--leaderboard={board}",
        "--cache_dir=",
        "--evaluations=knn,linear_probe",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = benchmark.read_leaderboard(str(board))
    assert {r["evaluation"] for r in rows} == {"knn", "linear_probe"}
    for row in rows:
        protocol = json.loads(row["protocol"])
        assert protocol["input"]["input_normalization"] == "imagenet_mean_std"
        assert protocol["input"]["format"] == "authors_release"
        assert protocol["preprocessing"]["input_normalization"] == "imagenet_mean_std"


# ----------------------------------------------------------------- outputs


def _dict_module(path, outputs):
    """A SavedModel whose __call__ returns {name: f(images)}."""
    holder = tf.Module()
    spec = tf.TensorSpec([None, 8, 8, 3], tf.float32)
    holder.__call__ = tf.function(
        lambda x: {k: f(x) for k, f in outputs.items()}, input_signature=[spec]
    )
    tf.saved_model.save(holder, path)
    return path


def test_singleton_spatial_outputs_are_squeezed(tmp_path):
    path = _dict_module(
        str(tmp_path / "m"),
        {"pool": lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True)},
    )
    module = modules.load_module(path)
    assert module.feature_dim == 3
    assert module.features(tf.ones([2, 8, 8, 3])).shape == (2, 3)


def test_several_candidate_outputs_are_listed_with_their_shapes(tmp_path):
    path = _dict_module(
        str(tmp_path / "m"),
        {
            "embedding": lambda x: tf.reduce_mean(x, axis=[1, 2]),
            "scores": lambda x: tf.reshape(x, [-1, 192])[:, :10],
        },
    )
    with pytest.raises(ModuleError) as error:
        modules.load_module(path)
    message = str(error.value)
    assert "embedding [4, 3], scores [4, 10]" in message
    assert "--output=NAME" in message and "\n" not in message
    assert modules.load_module(path, output="scores").feature_dim == 10


# ----------------------------------------------------------- normalisation


def _identity_module(path, dtype=tf.float32):
    """A SavedModel returning the per-channel mean of its input image."""
    holder = tf.Module()
    spec = tf.TensorSpec([None, 4, 4, 3], dtype)
    holder.__call__ = tf.function(
        lambda x: tf.reduce_mean(tf.cast(x, tf.float32), axis=[1, 2]),
        input_signature=[spec],
    )
    tf.saved_model.save(holder, path)
    return path


EXPECTED = {  # what each normalisation makes of a constant 0.5 image, by hand
    "unit": [0.5] * 3,
    "minus_one_one": [0.0] * 3,
    "0_255": [127.5] * 3,
    "uint8": [128.0] * 3,
    "imagenet_mean_std": [(0.5 - m) / s for m, s in zip((0.485, 0.456, 0.406),
                                                         (0.229, 0.224, 0.225))],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(normalization.NORMALIZATIONS))
def test_every_normalisation_feeds_what_its_table_says(tmp_path, name):
    assert set(EXPECTED) == set(normalization.NORMALIZATIONS)
    module = modules.load_module(
        _identity_module(str(tmp_path / "m")), input_normalization=name
    )
    images = tf.fill([2, 4, 4, 3], 0.5)
    np.testing.assert_allclose(module.features(images)[0], EXPECTED[name], rtol=1e-5)
    assert module.contract()["input_normalization"] == name
    assert module.contract()["normalization_source"] == "override"


def test_uint8_inputs_default_to_uint8_and_metadata_is_read(tmp_path):
    module = modules.load_module(_identity_module(str(tmp_path / "u"), tf.uint8))
    assert module.normalization == "uint8"
    assert module.normalization_source == "input dtype"
    path = _identity_module(str(tmp_path / "m"))
    with open(os.path.join(path, "metadata.json"), "w") as f:
        json.dump({"input_normalization": "minus_one_one"}, f)
    module = modules.load_module(path)
    assert (module.normalization, module.normalization_source) == (
        "minus_one_one",
        "metadata",
    )


def test_bad_normalisations_are_one_line(tmp_path):
    path = _identity_module(str(tmp_path / "m"))
    with pytest.raises(ModuleError, match="unknown input normalisation 'rgb'"):
        modules.load_module(path, input_normalization="rgb")
    with pytest.raises(ModuleError, match="not both"):
        modules.load_module(path, input_normalization="unit", value_range="0,1")
    line = _error_line(f"--module={path}", "--input_normalization=rgb")
    assert "unknown input normalisation 'rgb'" in line and "minus_one_one" in line


# ----------------------------------------------------------------- Keras


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """(the model, its .keras file) of MobileNetV3Small without its top."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(
        weights=None, include_top=False, pooling="avg"
    )
    path = str(tmp_path_factory.mktemp("keras") / "mobilenet_v3_small.keras")
    model.save(path)
    return model, path


def test_a_keras_file_is_a_module_with_its_preprocessing_detected(mobilenet):
    model, path = mobilenet
    module = modules.load_module(path)
    contract = module.contract()
    assert contract["format"] == "keras"
    # Built without input_shape, it takes any size: the default is used.
    assert (module.image_size, module.size_source) == (224, "default")
    assert contract["input_normalization"] == "0_255"
    assert "Rescaling" in contract["normalization_source"]
    assert module.feature_dim == 576 and not module.has_logits
    images = tf.random.stateless_uniform([2, 224, 224, 3], seed=[0, 1])
    np.testing.assert_allclose(
        module.features(images), model(255.0 * images), rtol=1e-4, atol=1e-5
    )
    assert module.sha256 == modules.module_sha256(path)


@pytest.mark.slow
def test_a_keras_file_and_the_model_in_memory_give_the_same_rows(mobilenet):
    model, path = mobilenet
    # At 64 px (it takes any size): the comparison, not the cost of 224 px.
    kwargs = dict(
        config="smoke",
        evaluations=["knn", "linear_probe"],
        report=None,
        image_size=64,
    )
    from_file = benchmark.evaluate(path, sandbox="off", **kwargs)
    in_memory = benchmark.evaluate(model, sandbox="off", **kwargs)
    assert in_memory.rows[0]["handle"] == f"in-memory:{model.name}"

    def values(results):
        return {
            (r["evaluation"], r["dataset"], r["metric"]): (r["value"], r["protocol"])
            for r in results.rows
        }

    assert values(from_file) == values(in_memory) and len(values(from_file)) >= 2
    assert all(json.loads(r["protocol"])["input"]["image_size"] == 64
               for r in from_file.rows)  # fmt: skip


def _classifier(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(12, activation="relu", name="embedding")(x)
    outputs = keras.layers.Dense(5, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="tiny_classifier")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_classifier_gives_its_penultimate_features_and_logits(tmp_path, suffix):
    model = _classifier()
    path = str(tmp_path / f"classifier{suffix}")
    model.save(path)
    module = modules.load_module(path)
    assert module.feature_dim == 12 and module.has_logits
    images = tf.random.stateless_uniform([3, 16, 16, 3], seed=[2, 3])
    embedding = keras.Model(model.inputs, model.get_layer("embedding").output)
    np.testing.assert_allclose(module.features(images), embedding(images), rtol=1e-5)
    probabilities = tf.nn.softmax(module.logits(images))
    np.testing.assert_allclose(probabilities, model(images), rtol=1e-4, atol=1e-6)
    assert module.fine_tuning_problem() is None


def test_a_keras_file_is_fine_tuned(tmp_path):
    path = str(tmp_path / "classifier.keras")
    _classifier().save(path)
    results = benchmark.evaluate(
        path,
        config="smoke",
        evaluations=["fine_tune"],
        overrides=("fine_tune.steps=5", "fine_tune.learning_rates=0.01"),
        sandbox="off",
        report=None,
    )
    (row,) = [r for r in results.rows if r["metric"] == "accuracy"]
    assert 0.0 <= float(row["value"]) <= 1.0
    assert json.loads(row["protocol"])["input"]["format"] == "keras"


def _lambda_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


@keras.saving.register_keras_serializable(package="Elsewhere")
class _Custom(keras.layers.Layer):
    def call(self, x):
        return x


def _custom_model():
    inputs = keras.Input((8, 8, 3))
    x = _Custom()(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def test_bad_keras_files_are_refused_in_one_line(tmp_path):
    lam = str(tmp_path / "lambda.keras")
    _lambda_model().save(lam)
    with pytest.raises(ModuleError, match="Lambda layer"):
        modules.load_module(lam)
    custom = str(tmp_path / "custom.keras")
    _custom_model().save(custom)
    with pytest.raises(ModuleError, match="custom class _Custom"):
        modules.load_module(custom)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    weights = str(tmp_path / "only.weights.h5")
    _classifier().save_weights(weights)
    os.rename(weights, str(tmp_path / "weights.h5"))
    with pytest.raises(ModuleError, match="weights only, not a model"):
        modules.load_module(str(tmp_path / "weights.h5"))
    planted = tmp_path / "planted.keras"
    with zipfile.ZipFile(lam) as src, zipfile.ZipFile(planted, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("../escape.py", "print('hi')")
    with pytest.raises(ModuleError, match="which Keras does not write"):
        modules.load_module(str(planted))
    line = _error_line(f"--module={corrupt}", "--leaderboard=")
    assert "not a valid .keras file" in line and "model.save" in line


def test_a_folder_matching_no_convention_is_one_line(tmp_path):
    empty = tmp_path / "not_a_module"
    empty.mkdir()
    (empty / "weights.bin").write_bytes(b"\0" * 16)
    line = _error_line(f"--module={empty}", "--leaderboard=")
    assert "not a SavedModel" in line and ".keras" in line


def test_keras_scan_bounds_the_expansion(tmp_path):
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\0" * (80 << 20))
    with pytest.raises(keras_files.KerasFileError, match="expands to"):
        keras_files.scan(str(bomb))
