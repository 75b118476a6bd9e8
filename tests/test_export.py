"""The exported TF-Hub module: reload equality and the ways people load it."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from export.hub_module import METADATA_NAME, MODEL_CARD_NAME
from zoo.provenance import sha256_tree
from zoo.trainer import TrainError, load_trained_model

IMAGES = np.random.RandomState(0).uniform(size=(4, 32, 32, 3)).astype(np.float32)


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
    card = open(os.path.join(path, MODEL_CARD_NAME)).read()
    assert "<!-- format: saved_model_2 -->" in card
    assert "<!-- fine-tunable: true -->" in card


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


def test_load_trained_model_rejects_a_non_checkpoint(tmp_path):
    with pytest.raises(TrainError, match="is not a training checkpoint"):
        load_trained_model(str(tmp_path))


def test_benchmark_loader_reads_the_contract_and_rejects_bad_signatures(
    exported_module,
):
    from benchmark.modules import ModuleError, load_module

    module = load_module(exported_module[0])
    assert module.contract() == {
        "signature": "__call__",
        "image_size": 32,
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
