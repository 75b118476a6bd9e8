"""Architecture tests: published parameter counts, shapes, init, save/reload."""

import keras
import numpy as np
import pytest

from zoo.models import create_backbone, create_classifier, list_architectures
from zoo.objectives import create_objective
from zoo.registry import RegistryError


def _trainable_count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def test_resnet50_has_the_published_parameter_count():
    # ResNet-50 v1.5 with a 1000-class head: 25,557,032 trainable parameters
    # (the torchvision / TF Model Garden count; BN moving statistics excluded).
    model = create_classifier("resnet50", create_objective("softmax"), 1000)
    assert _trainable_count(model) == 25_557_032
    assert model.output["pre_logits"].shape[-1] == 2048


@pytest.mark.parametrize("size,final", [(32, 1), (64, 2), (96, 3), (224, 7)])
def test_resnet50_output_shapes(size, final):
    backbone = create_backbone("resnet50", width_multiplier=0.125)
    out = backbone(np.zeros((2, size, size, 3), np.float32))
    assert out["block4_unit3"].shape == (2, final, final, 256)
    assert out["pre_logits"].shape == (2, 256)
    assert out["block1_unit1"].shape[1] == -(-size // 4)


def test_resnet50_endpoints_are_named_and_ordered():
    backbone = create_backbone("resnet50", width_multiplier=0.25)
    names = list(backbone.output)
    units = [n for n in names if n.startswith("block")]
    assert len(units) == 16  # 3 + 4 + 6 + 3 bottleneck blocks
    assert units[0] == "block1_unit1" and units[-1] == "block4_unit3"
    assert "stem" in names and "pre_logits" in names


def test_resnet50_v15_details():
    backbone = create_backbone("resnet50", width_multiplier=0.25)
    bns = [x for x in backbone.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in bns)
    last_bns = [bn for bn in bns if bn.name.endswith("_bn3")]
    assert len(last_bns) == 16
    for bn in last_bns:  # zero-initialised gamma of the last BN of each block
        assert np.all(keras.ops.convert_to_numpy(bn.gamma) == 0)
    convs = [x for x in backbone.layers if isinstance(x, keras.layers.Conv2D)]
    assert not any(c.use_bias for c in convs)
    # v1.5: the stride of a downsampling block sits on the 3x3 conv
    assert backbone.get_layer("block2_unit1_conv2").strides == (2, 2)
    assert backbone.get_layer("block2_unit1_conv1").strides == (1, 1)


def test_save_and_reload_give_identical_outputs(tmp_path):
    model = create_classifier(
        "resnet50", create_objective("cosine_softmax"), 5, width_multiplier=0.125
    )
    images = np.random.RandomState(0).uniform(size=(3, 32, 32, 3)).astype("float32")
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    a, b = model(images), reloaded(images)
    np.testing.assert_array_equal(a["logits"], b["logits"])
    np.testing.assert_array_equal(a["pre_logits"], b["pre_logits"])


def test_unknown_architecture_is_a_one_line_error():
    with pytest.raises(RegistryError, match="unknown architecture 'resnet51'"):
        create_backbone("resnet51")
    assert "resnet50" in list_architectures()


def _bn_pair(scale, dtype="float32"):
    """Two zoo BatchNormalization layers with the same non-trivial weights,
    the second training through the fused kernel."""
    from zoo.models.layers import BatchNormalization

    layers = [
        BatchNormalization(momentum=0.9, epsilon=1e-3, scale=scale, dtype=dtype)
        for _ in range(2)
    ]
    for layer in layers:
        layer.build((8, 5, 5, 6))
        for i, v in enumerate(layer.weights):
            v.assign(0.3 + 0.1 * i + 0.05 * np.arange(6, dtype="float32"))
    layers[1].fused = True
    return layers


@pytest.mark.parametrize("scale", [True, False])
def test_fused_batch_norm_equals_keras_batch_norm(scale):
    import tensorflow as tf

    x = tf.constant(np.random.RandomState(0).normal(1.0, 3.0, (8, 5, 5, 6)), tf.float32)
    weights = tf.range(6, dtype=tf.float32)
    results = []
    for layer in _bn_pair(scale):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * y * weights)
        grads = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance])
    keras_path, fused = results
    # Forward, the input and parameter gradients, and the moving statistics
    # (updated from the biased batch variance, as Keras's layer does).
    for a, b in zip(keras_path, fused):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-5, atol=2e-5)
    # The moving statistics moved: the comparison above is not of initial values.
    assert not np.allclose(np.asarray(fused[-1]), 0.3 + 0.1 * (3 if scale else 2))


def test_fused_batch_norm_in_mixed_precision_and_inference():
    import tensorflow as tf

    x = tf.constant(np.random.RandomState(1).normal(0.0, 2.0, (8, 5, 5, 6)), tf.float16)
    a, b = _bn_pair(True, dtype="mixed_float16")
    ya, yb = a(x, training=True), b(x, training=True)
    assert yb.dtype == tf.float16 and b.moving_mean.dtype == "float32"
    np.testing.assert_allclose(
        np.asarray(yb, "float32"), np.asarray(ya, "float32"), atol=5e-3
    )
    np.testing.assert_allclose(b.moving_variance, a.moving_variance, rtol=1e-3)
    # Inference uses the moving statistics through Keras's path: identical.
    np.testing.assert_array_equal(a(x, training=False), b(x, training=False))


@pytest.mark.parametrize(
    "fused,matmul",
    [(True, False), (False, True), (True, True)],
    ids=["fused_batch_norm", "matmul_pointwise_conv", "both"],
)
def test_a_fast_kernel_training_step_equals_the_keras_one(fused, matmul):
    """One SGD step of a whole ResNet-50 (x1/8) from the same initial weights:
    the fused batch-norm kernel and the 1x1 convolutions as matrix products
    change no weight beyond float rounding."""
    import tensorflow as tf

    from zoo.models.layers import use_fused_batch_norm, use_matmul_pointwise_conv

    images = np.random.RandomState(2).uniform(size=(4, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1, 2, 1])
    after = []
    for fast in (False, True):
        keras.utils.set_random_seed(0)
        model = create_classifier(
            "resnet50", create_objective("softmax"), 3, width_multiplier=0.125
        )
        assert use_fused_batch_norm(model, fast and fused) == 53  # every BN
        # 16 blocks x two 1x1 convs, plus the 4 projection shortcuts.
        assert use_matmul_pointwise_conv(model, fast and matmul) == 36
        with tf.GradientTape() as tape:
            logits = model(images, training=True)["logits"]
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(labels, logits, True)
            )
        grads = tape.gradient(loss, model.trainable_variables)
        for g, v in zip(grads, model.trainable_variables):
            v.assign_sub(0.1 * g)
        after.append([np.asarray(v) for v in model.variables])
    for a, b in zip(*after):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def _conv_pair(kernel_size, strides, padding, use_bias, dtype="float32"):
    """Two zoo Conv2D layers with the same random weights, the second with
    `as_matmul` set."""
    from zoo.models.layers import Conv2D

    layers = [
        Conv2D(
            7,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=use_bias,
            bias_initializer="random_normal",
            dtype=dtype,
        )
        for _ in range(2)
    ]
    for layer in layers:
        layer.build((3, 5, 5, 6))
    for v, w in zip(layers[1].weights, layers[0].weights):
        v.assign(w)
    layers[1].as_matmul = True
    return layers


@pytest.mark.parametrize("strides", [1, 2, 3])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("use_bias", [False, True])
def test_matmul_pointwise_conv_equals_keras_conv(strides, padding, use_bias):
    import tensorflow as tf

    # 5 x 5 inputs: strides 2 and 3 leave a remainder (outputs 3 x 3, 2 x 2).
    x = tf.constant(np.random.RandomState(3).normal(0.5, 2.0, (3, 5, 5, 6)), tf.float32)
    weights = tf.range(7, dtype=tf.float32)
    results = []
    for layer in _conv_pair(1, strides, padding, use_bias):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y * weights)
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_weights])])
    keras_path, matmul = results
    side = -(-5 // strides)
    assert matmul[0].shape == keras_path[0].shape == (3, side, side, 7)
    assert len(matmul) == 3 + use_bias  # output; input, kernel (and bias) grads
    for a, b in zip(keras_path, matmul):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-4)


def test_matmul_pointwise_conv_in_mixed_precision_and_other_kernels():
    import tensorflow as tf

    x = tf.constant(np.random.RandomState(4).normal(0.0, 1.0, (3, 5, 5, 6)), tf.float16)
    a, b = _conv_pair(1, 2, "same", True, dtype="mixed_float16")
    ya, yb = a(x), b(x)
    assert yb.dtype == tf.float16 and b.kernel.dtype == "float32"
    np.testing.assert_allclose(
        np.asarray(yb, "float32"), np.asarray(ya, "float32"), atol=5e-3
    )
    # A 3 x 3 kernel takes Keras's path whatever the flag: identical.
    c, d = _conv_pair(3, 1, "same", False)
    x32 = tf.cast(x, tf.float32)
    np.testing.assert_array_equal(c(x32), d(x32))


def test_the_fast_kernel_flags_are_not_saved(tmp_path):
    from zoo.models.layers import (
        BatchNormalization,
        Conv2D,
        use_fused_batch_norm,
        use_matmul_pointwise_conv,
    )

    model = create_classifier(
        "resnet50", create_objective("softmax"), 3, width_multiplier=0.125
    )
    use_fused_batch_norm(model)
    use_matmul_pointwise_conv(model)
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    bns = [x for x in reloaded.layers if isinstance(x, BatchNormalization)]
    assert len(bns) == 53 and not any(bn.fused for bn in bns)
    convs = [x for x in reloaded.layers if isinstance(x, Conv2D)]
    assert len(convs) == 53 and not any(conv.as_matmul for conv in convs)
