"""The importer of the authors' SavedModels, on stand-ins with their signature
(serving_default taking `image`, returning block outputs, final_avg_pool,
final_layer and outputs with 1001 classes): a TF1 graph export, as theirs is,
and a TF2 one."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from export.catalog import hub_cache_key, pull
from export.hub_module import METADATA_NAME, MODEL_CARD_NAME
from export.importer import (
    AUTHORS_WEIGHT_DECAY,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImporterError,
    import_authors_module,
)

CHANNELS = 8
SIDE = 224
IMAGES = np.random.RandomState(0).uniform(size=(2, SIDE, SIDE, 3)).astype(np.float32)
# What the authors' `image` gets for IMAGES under each input_scale, by hand.
AUTHORS_INPUTS = {
    "imagenet_mean_std": (IMAGES - np.array(IMAGENET_MEAN, np.float32))
    / np.array(IMAGENET_STD, np.float32),
    "unit": IMAGES,
    "0_255": IMAGES * 255.0,
}


def _weights(seed):
    rng = np.random.RandomState(seed)
    return {
        "conv/kernel": 0.3 * rng.normal(size=(3, 3, 3, CHANNELS)).astype(np.float32),
        "batch_normalization/moving_mean": 0.1
        * rng.normal(size=(CHANNELS,)).astype(np.float32),
        "dense/kernel": rng.normal(size=(CHANNELS, 1001)).astype(np.float32),
        "dense/bias": rng.normal(size=(1001,)).astype(np.float32),
    }


def _forward(image, w):
    """The stand-in network: strided conv, a batch-norm-like shift, global
    average pool kept 4-D as in the authors' graph, a 1001-way dense layer."""
    block = tf.nn.relu(
        tf.nn.conv2d(image, w["conv/kernel"], 4, "SAME")
        - w["batch_normalization/moving_mean"]
    )
    pool = tf.nn.avg_pool2d(block, SIDE // 4, 1, "VALID")
    final = tf.reshape(pool, [-1, CHANNELS]) @ w["dense/kernel"] + w["dense/bias"]
    return {
        "block1": block,
        "final_avg_pool": pool,
        "final_layer": final,
        "outputs": final / 0.05,
    }


def _tf1_standin(path, weights):
    """Writes a TF1 graph SavedModel (how the authors exported theirs)."""
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [None, SIDE, SIDE, 3], "image")
        variables = {
            name: tf.compat.v1.get_variable(
                name, initializer=value, trainable="moving" not in name
            )
            for name, value in weights.items()
        }
        outputs = _forward(image, variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(path)
            signature = tf.compat.v1.saved_model.predict_signature_def(
                inputs={"image": image}, outputs=outputs
            )
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map={"serving_default": signature}
            )
            builder.save()


def _tf2_standin(path, weights, input_name="image"):
    """Writes the same network as a TF2 SavedModel."""
    root = tf.Module()
    root.weights = {
        name: tf.Variable(value, trainable="moving" not in name, name=name)
        for name, value in weights.items()
    }
    spec = tf.TensorSpec([None, SIDE, SIDE, 3], tf.float32, name=input_name)

    @tf.function(input_signature=[spec])
    def serve(image):
        return _forward(image, root.weights)

    tf.saved_model.save(root, path, signatures={"serving_default": serve})


@pytest.fixture(scope="module", params=["tf1", "tf2"])
def standin(request, tmp_path_factory):
    """Returns (stand-in SavedModel dir, its weights)."""
    weights = _weights(seed=1)
    path = str(tmp_path_factory.mktemp("standin") / request.param)
    (_tf1_standin if request.param == "tf1" else _tf2_standin)(path, weights)
    return path, weights


@pytest.fixture(scope="module")
def imported(standin, tmp_path_factory):
    """Returns (imported module dir, tree sha256) of the stand-in."""
    out = tmp_path_factory.mktemp("imported") / "authors_softmax_seed0"
    return import_authors_module(standin[0], str(out), loss="softmax", seed=0)


def _standin_outputs(path, images):
    fn = tf.saved_model.load(path).signatures["serving_default"]
    return {k: v.numpy() for k, v in fn(image=tf.constant(images)).items()}


def test_features_and_logits_equal_the_standins(standin, imported):
    expected = _standin_outputs(standin[0], AUTHORS_INPUTS["imagenet_mean_std"])
    module = tf.saved_model.load(imported[0])
    features = expected["final_avg_pool"].reshape(len(IMAGES), CHANNELS)
    np.testing.assert_allclose(module(IMAGES), features, rtol=1e-5, atol=1e-5)
    signature = module.signatures["feature_vector"](images=IMAGES)["feature_vector"]
    np.testing.assert_allclose(signature, features, rtol=1e-5, atol=1e-5)
    logits = module.signatures["logits"](images=IMAGES)["logits"]
    assert logits.shape == (len(IMAGES), 1000)
    np.testing.assert_allclose(logits, expected["outputs"][:, 1:], rtol=1e-5, atol=1e-4)
    endpoints = module.signatures["endpoints"](images=IMAGES)
    assert set(endpoints) == {
        "block1",
        "final_avg_pool",
        "final_layer",
        "outputs",
        "logits",
    }
    np.testing.assert_allclose(
        endpoints["final_layer"], expected["final_layer"], rtol=1e-5, atol=1e-5
    )


def test_reusable_attributes_and_authors_weight_decay(standin, imported):
    module = tf.saved_model.load(imported[0])
    assert len(module.variables) == 4 and len(module.trainable_variables) == 3
    w = standin[1]
    # 8e-5 * sum ||v||^2 / 2 over the conv and dense kernels (no BN, no bias)
    expected = (
        AUTHORS_WEIGHT_DECAY
        * 0.5
        * sum(float(np.sum(np.square(w[k]))) for k in ("conv/kernel", "dense/kernel"))
    )
    assert float(module.regularization_losses[0]()) == pytest.approx(expected, 1e-5)
    # training=True is accepted (hub.KerasLayer passes it) and changes nothing
    np.testing.assert_allclose(module(IMAGES, True), module(IMAGES, False))


def test_metadata_and_model_card(imported):
    with open(os.path.join(imported[0], METADATA_NAME)) as f:
        meta = json.load(f)
    assert (
        meta["source"] == "authors" and meta["name"] == "authors_resnet50_softmax_seed0"
    )
    assert meta["image_size"] == 224 and meta["feature_dim"] == CHANNELS
    assert meta["value_range"] == [0.0, 1.0]
    assert meta["input_scale"] == "imagenet_mean_std"
    assert meta["holdout_top1"] == pytest.approx(0.770)
    card = open(os.path.join(imported[0], MODEL_CARD_NAME)).read()
    for line in (
        "<!-- format: saved_model_2 -->",
        "<!-- fine-tunable: true -->",
        "<!-- network-architecture: resnet50 -->",
        "<!-- dataset: imagenet2012 -->",
        "`softmax` with no hyperparameters.",
        "ImageNet top-1 77.0%",
        "## Training recipe",
        "## Licence",
        "The default input size is 224x224",
    ):
        assert line in card, line


@pytest.mark.parametrize("input_scale", ["unit", "0_255"])
def test_input_scale_maps_unit_images_onto_the_authors_input(
    input_scale, standin, tmp_path
):
    out, _ = import_authors_module(
        standin[0], str(tmp_path / "m"), "sigmoid", 1, input_scale=input_scale
    )
    expected = _standin_outputs(standin[0], AUTHORS_INPUTS[input_scale])
    features = expected["final_avg_pool"].reshape(len(IMAGES), CHANNELS)
    module = tf.saved_model.load(out)
    np.testing.assert_allclose(module(IMAGES), features, rtol=1e-5, atol=1e-5)


def test_fine_tunes_through_hub_keras_layer(imported):
    hub = pytest.importorskip("tensorflow_hub")
    tf_keras = pytest.importorskip("tf_keras")
    layer = hub.KerasLayer(imported[0], trainable=True)
    model = tf_keras.Sequential(
        [tf_keras.Input((SIDE, SIDE, 3)), layer, tf_keras.layers.Dense(2)]
    )
    assert len(model.losses) == 1  # the authors' weight decay
    loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = tf_keras.optimizers.SGD(0.05)
    losses = []
    for _ in range(4):
        with tf.GradientTape() as tape:
            loss = loss_fn([0, 1], model(IMAGES, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_benchmark_loads_the_imported_module(imported):
    from benchmark.modules.loading import load_module

    module = load_module(imported[0])
    assert module.contract()["image_size"] == 224
    assert module.feature_dim == CHANNELS


def test_bad_sources_are_refused(tmp_path):
    with pytest.raises(ImporterError, match="cannot load .* as a SavedModel"):
        import_authors_module(str(tmp_path), str(tmp_path / "out"), "softmax", 0)
    wrong_input = str(tmp_path / "wrong_input")
    _tf2_standin(wrong_input, _weights(seed=2), input_name="pixels")
    with pytest.raises(ImporterError, match="takes \\['pixels'\\], not one input"):
        import_authors_module(wrong_input, str(tmp_path / "out"), "softmax", 0)
    with pytest.raises(ImporterError, match="unknown input_scale 'rgb'"):
        import_authors_module(wrong_input, str(tmp_path / "o"), "softmax", 0, "rgb")
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_pull_imports_an_entry_without_a_hash(standin, imported, tmp_path):
    entry = {
        "name": "authors_resnet50_softmax_seed0",
        "source": "authors",
        "arch": "resnet50",
        "objective": "softmax",
        "seed": 0,
        "handle": standin[0],
        "sha256": None,
        "size": None,
        "accuracy": 0.77,
        "needs_import": True,
    }
    cache = str(tmp_path / "cache")
    lines = []
    path = pull(entry, cache_dir=cache, report=lines.append)
    assert path == os.path.join(cache, hub_cache_key("zoo-import:" + standin[0]))
    assert any("cannot be verified" in line for line in lines)
    expected = tf.saved_model.load(imported[0])(IMAGES)
    np.testing.assert_allclose(tf.saved_model.load(path)(IMAGES), expected, atol=1e-5)
    lines.clear()
    assert pull(entry, cache_dir=cache, report=lines.append) == path
    assert lines == [f"authors_resnet50_softmax_seed0: cached in {path}"]
