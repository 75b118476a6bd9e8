"""The exported TF-Hub module: reload equality and the ways people load it
(tf.saved_model.load / hub.load, hub.KerasLayer in tf_keras, TFSMLayer in
Keras 3), the model card, and zoo-export --archive."""

import json
import os
import shutil
import tarfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from export.hub_module import METADATA_NAME, MODEL_CARD_NAME, input_size_note
from zoo.provenance import sha256_file, sha256_tree
from zoo.trainer import TrainError, load_trained_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = np.random.RandomState(0).uniform(size=(4, 32, 32, 3)).astype(np.float32)
LABELS = np.array([0, 1, 0, 1])


@pytest.fixture(scope="module")
def keras_features(trained_run):
    """Returns the Keras model's pre_logits on IMAGES: what every loader of
    the exported module must reproduce."""
    model, _, _ = load_trained_model(trained_run)
    return model(IMAGES, training=False)["pre_logits"].numpy()


def test_reload_equals_the_keras_model(trained_run, exported_module):
    path, sha = exported_module
    model, objective, _ = load_trained_model(trained_run)
    expected = model(IMAGES, training=False)
    module = tf.saved_model.load(path)
    np.testing.assert_allclose(module(IMAGES), expected["pre_logits"], atol=1e-5)
    features = module.signatures["feature_vector"](images=IMAGES)["feature_vector"]
    np.testing.assert_allclose(features, expected["pre_logits"], atol=1e-5)
    logits = module.signatures["logits"](images=IMAGES)["logits"]
    np.testing.assert_allclose(logits, objective.scores(expected["logits"]), atol=1e-4)
    endpoints = module.signatures["endpoints"](images=IMAGES)
    assert {"stem", "block4_unit3", "pre_logits", "logits"} <= set(endpoints)
    assert sha == sha256_tree(path)


def test_module_has_reusable_savedmodel_attributes(exported_module):
    module = tf.saved_model.load(exported_module[0])
    assert len(module.trainable_variables) > 0
    assert len(module.variables) > len(module.trainable_variables)
    assert len(module.regularization_losses) == 1
    assert float(module.regularization_losses[0]()) > 0
    # any input size: the network is fully convolutional
    assert module(tf.zeros([1, 48, 40, 3])).shape == (1, 128)


def test_metadata_and_model_card(exported_module):
    path = exported_module[0]
    with open(os.path.join(path, METADATA_NAME)) as f:
        meta = json.load(f)
    assert meta["objective"] == "cosine_softmax"
    hparams = {"normalize_features": True, "temperature": 0.05}
    assert meta["objective_hparams"] == hparams
    assert meta["image_size"] == 32 and meta["feature_dim"] == 128
    assert meta["format"] == "saved_model_2"
    assert meta["source"] == "zoo" and meta["value_range"] == [0.0, 1.0]
    card = open(os.path.join(path, MODEL_CARD_NAME)).read()
    for line in (
        "<!-- format: saved_model_2 -->",
        "<!-- task: image-feature-vector -->",
        "<!-- fine-tunable: true -->",
        f"<!-- network-architecture: {meta['arch']} -->",
        f"<!-- dataset: {meta['dataset']} -->",
        "<!-- license: apache-2.0 -->",
        "`cosine_softmax` with normalize_features=True, temperature=0.05.",
        "## Accuracy",
        f"Holdout top-1: {100 * meta['holdout_top1']:.1f}%.",
        "## Training recipe",
        "SGD with Nesterov momentum",
        f"seed\n{meta['seed']}.",
        "## Licence",
        "The default input size is 32x32, the size this module was trained at",
    ):
        assert line in card, line


def test_kaggle_models_metadata_validates_against_the_documented_fields(
    exported_module,
):
    """model-metadata.json and model-instance-metadata.json beside the card
    validate against the JSON schemas of the fields Kaggle documents
    (export/kaggle.py), and the check fails on a wrong framework name."""
    import copy

    import jsonschema

    from export import kaggle

    path = exported_module[0]
    meta = json.load(open(os.path.join(path, METADATA_NAME)))
    model = json.load(open(os.path.join(path, kaggle.MODEL_FILE)))
    instance = json.load(open(os.path.join(path, kaggle.INSTANCE_FILE)))
    jsonschema.validate(model, kaggle.MODEL_SCHEMA)
    jsonschema.validate(instance, kaggle.INSTANCE_SCHEMA)
    assert model["description"] == open(os.path.join(path, MODEL_CARD_NAME)).read()
    assert model["isPrivate"] is True and model["licenseName"] == "Apache 2.0"
    assert instance["framework"] == "tensorFlow2" and instance["fineTunable"] is True
    assert instance["trainingData"] == [meta["dataset"]]
    assert instance["instanceSlug"] == kaggle.slug(meta["name"])
    assert instance["ownerSlug"] == model["ownerSlug"] == kaggle.OWNER_PLACEHOLDER
    wrong = copy.deepcopy(instance)
    wrong["framework"] = "tensorflow2"  # Kaggle's names are camel case
    with pytest.raises(jsonschema.ValidationError, match="tensorflow2"):
        jsonschema.validate(wrong, kaggle.INSTANCE_SCHEMA)
    assert (
        kaggle.slug("resnet50_cosine_softmax_seed0") == "resnet50-cosine-softmax-seed0"
    )
    with pytest.raises(ValueError, match="Kaggle slug"):
        kaggle.slug("__")


def test_input_size_note_names_the_full_size_side():
    assert "Full-size" not in input_size_note("resnet50", 224)
    assert "Full-size resnet50 configs train and evaluate at 224x224" in (
        input_size_note("resnet50", 32)
    )
    note = input_size_note("inception_v3", 128)
    assert "128x128, the size this module was trained at" in note
    assert "at 299x299" in note
    assert "Full-size" not in input_size_note("some_new_arch", 64)


def test_every_loader_reproduces_the_keras_model(exported_module, keras_features):
    hub = pytest.importorskip("tensorflow_hub")
    path = exported_module[0]
    np.testing.assert_allclose(hub.load(path)(IMAGES), keras_features, atol=1e-5)
    layer = hub.KerasLayer(path, trainable=False)
    np.testing.assert_allclose(layer(IMAGES), keras_features, atol=1e-5)
    tfsm = keras.layers.TFSMLayer(path, call_endpoint="feature_vector")
    np.testing.assert_allclose(
        tfsm(IMAGES)["feature_vector"], keras_features, atol=1e-5
    )


def test_tfsm_layer_in_a_keras3_model(exported_module):
    layer = keras.layers.TFSMLayer(exported_module[0], call_endpoint="feature_vector")
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(2)(layer(inputs)["feature_vector"])
    model = keras.Model(inputs, outputs)
    direct = tf.saved_model.load(exported_module[0])(IMAGES)
    np.testing.assert_allclose(layer(IMAGES)["feature_vector"], direct, atol=1e-5)
    assert model(IMAGES).shape == (4, 2)


def test_hub_keras_layer_fine_tunes_in_tf_keras(exported_module):
    hub = pytest.importorskip("tensorflow_hub")
    tf_keras = pytest.importorskip("tf_keras")
    layer = hub.KerasLayer(exported_module[0], trainable=True)
    model = tf_keras.Sequential(
        [tf_keras.Input((32, 32, 3)), layer, tf_keras.layers.Dense(2)]
    )
    labels = np.array([0, 1, 0, 1])
    loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = tf_keras.optimizers.SGD(0.05)
    moving = [v for v in layer.variables if "moving_mean" in v.name][0]
    before_stats = moving.numpy().copy()
    losses = []
    for _ in range(8):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(IMAGES, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert not np.allclose(moving.numpy(), before_stats)  # BN statistics updated


def test_tfsm_layer_fine_tunes_in_a_keras3_model(exported_module):
    layer = keras.layers.TFSMLayer(
        exported_module[0],
        call_endpoint="feature_vector",
        call_training_endpoint="feature_vector_training",
    )
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(2)(layer(inputs)["feature_vector"])
    model = keras.Model(inputs, outputs)
    assert len(layer.trainable_weights) > 0
    moving = [w for w in layer.non_trainable_weights if "moving_mean" in w.name][0]
    kernel = [w for w in layer.trainable_weights if "kernel" in w.name][0]
    before_stats, before_kernel = moving.numpy(), kernel.numpy()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(0.05)
    losses = []
    for _ in range(8):
        with tf.GradientTape() as tape:
            loss = loss_fn(LABELS, model(IMAGES, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        # The traced call also computes the (discarded) classifier head, so
        # TFSMLayer lists the head's variables too; they get no gradient.
        pairs = [(g, v) for g, v in zip(grads, model.trainable_variables)]
        assert all(v.name.startswith("logits") for g, v in pairs if g is None)
        optimizer.apply_gradients([(g, v) for g, v in pairs if g is not None])
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert not np.allclose(kernel.numpy(), before_kernel)  # backbone trained
    assert not np.allclose(moving.numpy(), before_stats)  # BN statistics updated


@pytest.mark.slow
def test_zoo_export_archive_flag(trained_run, tmp_path, warm):
    out = tmp_path / "digits_module"
    result = warm.run(
        "export.main",
        f"--checkpoint={trained_run}",
        f"--out={out}",
        "--archive",
        "--kaggle_owner=zoo-team",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = dict(
        line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line
    )
    archive = tmp_path / "digits_module.tar.gz"
    assert lines["archive"] == str(archive)
    assert lines["archive sha256"] == sha256_file(archive)
    assert lines["sha256"] == sha256_tree(out)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {"saved_model.pb", "metadata.json", "README.md"} <= set(names)
    assert {"model-metadata.json", "model-instance-metadata.json"} <= set(names)
    instance = json.loads((out / "model-instance-metadata.json").read_text())
    assert instance["ownerSlug"] == "zoo-team"
    assert "variables/variables.index" in names


def test_load_trained_model_rejects_a_non_checkpoint(tmp_path):
    with pytest.raises(TrainError, match="is not a training checkpoint"):
        load_trained_model(str(tmp_path))


def test_benchmark_loader_reads_the_contract_and_rejects_bad_signatures(
    exported_module,
):
    from benchmark.modules.loading import ModuleError, load_module

    module = load_module(exported_module[0])
    assert module.contract() == {
        "format": "saved_model",
        "signature": "__call__",
        "output": None,
        "image_size": 32,
        "size_source": "metadata",
        "input_dtype": "float32",
        "input_normalization": "unit",
        "normalization_source": "metadata",  # zoo-export writes value_range
        "value_range": [0.0, 1.0],
        "feature_dim": 128,
    }
    assert module.sha256 == exported_module[1]
    via_signature = load_module(exported_module[0], signature="feature_vector")
    images = tf.constant(IMAGES)
    np.testing.assert_allclose(via_signature(images), module(images), atol=1e-5)
    with pytest.raises(ModuleError, match="has no signature 'nope'"):
        load_module(exported_module[0], signature="nope")
    # a dict of outputs yields its feature-vector entry ("pre_logits" here)
    via_endpoints = load_module(exported_module[0], signature="endpoints")
    np.testing.assert_allclose(via_endpoints(images), module(images), atol=1e-5)


def test_export_never_deletes_a_folder_it_did_not_write(
    trained_run, exported_module, tmp_path, warm
):
    """--out naming the training run, or any folder of other files, is refused
    in one line before any work and left as it was; an earlier export is
    replaced."""
    before = sha256_tree(trained_run)
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    for out in (trained_run, str(other)):
        result = warm.run("export.main", f"--checkpoint={trained_run}", f"--out={out}")
        assert result.returncode == 2, result.stderr[-2000:]
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
        assert "refusing to replace" in line and "Traceback" not in result.stderr
    assert sha256_tree(trained_run) == before
    assert (other / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["home"]  # No staging left behind.

    from export.hub_module import export_hub_module

    model, objective, info = load_trained_model(trained_run)
    out = tmp_path / "module"
    shutil.copytree(exported_module[0], out)  # an earlier export of this run
    (out / "stale.txt").write_text("from an earlier export")
    again, sha = export_hub_module(model, objective, info, str(out))
    assert again == str(out) and not (out / "stale.txt").exists()
    assert sha == sha256_tree(str(out))
    assert sorted(os.listdir(tmp_path)) == ["home", "module"]
