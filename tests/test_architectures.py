"""Cross-architecture tests: Inception v3's published parameter count, shapes
at several resolutions, the auxiliary head, save/reload, mixed precision and a
2-replica MirroredStrategy step (ResNet-50 and Inception v3)."""

import json
import os
import textwrap

import keras
import numpy as np
import pytest

from zoo.models import create_backbone, create_classifier, list_architectures
from zoo.objectives import create_objective

# Width 1 channel counts of the Inception v3 endpoints (as in the paper / Keras).
INCEPTION_CHANNELS = {
    "stem": 192,
    "mixed0": 256,
    "mixed1": 288,
    "mixed2": 288,
    **{f"mixed{i}": 768 for i in range(3, 8)},
    "mixed8": 1280,
    "mixed9": 2048,
    "mixed10": 2048,
}
# The same at width 0.125 (every branch rounded separately, then concatenated).
INCEPTION_CHANNELS_W8 = {
    "stem": 24,
    "mixed0": 32,
    "mixed1": 36,
    "mixed2": 36,
    **{f"mixed{i}": 96 for i in range(3, 8)},
    "mixed8": 160,
    "mixed9": 256,
    "mixed10": 256,
}


def _grids(size):
    """Returns the (35-grid, 17-grid, 8-grid) sides of Inception v3 at `size`."""
    pool = lambda n: (n - 3) // 2 + 1  # noqa: E731  3x3 'valid', stride 2
    g35 = pool(pool((size - 3) // 2 + 1 - 2) - 2)
    g17 = pool(g35)
    return g35, g17, pool(g17)


@pytest.fixture
def policy():
    """Yields a setter for the global dtype policy; restores float32 after."""
    try:
        yield keras.mixed_precision.set_global_policy
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_inception_v3_is_registered():
    assert "inception_v3" in list_architectures()


def test_inception_v3_has_the_keras_parameter_count():
    model = create_classifier(
        "inception_v3", create_objective("softmax"), 1000, image_size=299
    )
    assert model.count_params() == 23_851_784  # BN moving statistics included
    reference = keras.applications.InceptionV3(weights=None, classes=1000)
    assert model.count_params() == reference.count_params()
    shapes = {k: tuple(v.shape) for k, v in model.output.items()}
    assert shapes["pre_logits"] == (None, 2048)
    assert shapes["logits"] == (None, 1000)
    for name, channels in INCEPTION_CHANNELS.items():
        side = {192: 35, 256: 35, 288: 35, 768: 17}.get(channels, 8)
        assert shapes[name] == (None, side, side, channels), name
        if name.startswith("mixed"):  # same shapes as the Keras application
            assert reference.get_layer(name).output.shape == shapes[name]
    bns = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert len(bns) == 94
    assert all(not bn.scale and bn.epsilon == 1e-3 and bn.momentum == 0.9 for bn in bns)
    convs = [x for x in model.layers if isinstance(x, keras.layers.Conv2D)]
    assert len(convs) == 94 and not any(c.use_bias for c in convs)


@pytest.fixture(scope="module")
def small_inception():
    return create_backbone("inception_v3", width_multiplier=0.125)


@pytest.fixture(scope="module")
def small_resnet():
    return create_backbone("resnet50", width_multiplier=0.125)


@pytest.mark.parametrize("size", [75, 139, 299])
def test_inception_v3_output_shapes(small_inception, size):
    out = small_inception(np.zeros((2, size, size, 3), np.float32))
    names = list(out)
    mixed = [f"mixed{i}" for i in range(11)]
    assert [n for n in names if n.startswith("mixed")] == mixed
    assert names[0] == "stem" and names[-1] == "pre_logits"
    g35, g17, g8 = _grids(size)
    for name, channels in INCEPTION_CHANNELS_W8.items():
        index = int(name[5:]) if name.startswith("mixed") else 0
        side = g35 if index < 3 else g17 if index < 8 else g8
        assert out[name].shape == (2, side, side, channels), name
    assert out["pre_logits"].shape == (2, 256)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(out["pre_logits"])))


def test_inception_v3_grid_sizes():
    assert _grids(299) == (35, 17, 8)
    assert _grids(139) == (15, 7, 3)
    assert _grids(75) == (7, 3, 1)
    with pytest.raises(ValueError, match="image_size >= 75"):
        create_backbone("inception_v3", image_size=74)


@pytest.mark.parametrize("size,final", [(32, 1), (64, 2), (224, 7)])
def test_resnet50_output_shapes_at_several_resolutions(small_resnet, size, final):
    out = small_resnet(np.zeros((2, size, size, 3), np.float32))
    assert list(out)[0] == "stem" and list(out)[-1] == "pre_logits"
    assert out["block4_unit3"].shape == (2, final, final, 256)
    assert out["pre_logits"].shape == (2, 256)


def test_inception_v3_aux_head(small_inception):
    assert "aux_logits" not in small_inception.output
    model = create_backbone(
        "inception_v3", width_multiplier=0.125, aux_head=True, aux_classes=7
    )
    out = model(np.zeros((2, 299, 299, 3), np.float32))
    assert out["aux_logits"].shape == (2, 7)
    assert keras.backend.standardize_dtype(out["aux_logits"].dtype) == "float32"
    # standard head: 5x5/3 pool -> 5x5, then a 5x5 'valid' conv -> 1x1
    assert model.get_layer("aux_conv_conv").kernel.shape == (5, 5, 16, 96)
    small = create_backbone(
        "inception_v3",
        image_size=75,
        width_multiplier=0.125,
        aux_head=True,
        aux_classes=3,
    )
    assert small.output["aux_logits"].shape == (None, 3)
    for bad in (None, 0):
        with pytest.raises(ValueError, match="aux_classes") as info:
            create_backbone("inception_v3", aux_head=True, aux_classes=bad)
        assert "\n" not in str(info.value)


def test_inception_v3_aux_head_parameter_count():
    # Standard aux head at width 1: 1x1 conv 128 + BN, 5x5 conv 768 + BN, dense.
    plain = create_backbone("inception_v3", image_size=299)
    aux = create_backbone(
        "inception_v3", image_size=299, aux_head=True, aux_classes=1000
    )
    expected = (768 * 128 + 3 * 128) + (25 * 128 * 768 + 3 * 768) + 769 * 1000
    assert aux.count_params() - plain.count_params() == expected


def test_inception_v3_save_and_reload_give_identical_outputs(tmp_path):
    model = create_classifier(
        "inception_v3",
        create_objective("softmax"),
        5,
        image_size=75,
        width_multiplier=0.125,
        aux_head=True,
        aux_classes=5,
    )
    images = np.random.RandomState(0).uniform(size=(3, 75, 75, 3)).astype("float32")
    path = str(tmp_path / "inception.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    a, b = model(images), reloaded(images)
    assert list(a) == list(b)
    for name in ("logits", "aux_logits", "pre_logits", "mixed10"):
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize("dtype_policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize(
    "arch,size,kwargs",
    [
        ("resnet50", 32, {}),
        # a fixed size: under 299 px the aux head needs it to shrink its kernels
        ("inception_v3", 75, {"image_size": 75, "aux_head": True, "aux_classes": 4}),
    ],
)
def test_mixed_precision_gives_float32_logits_and_loss(
    policy, dtype_policy, arch, size, kwargs
):
    policy(dtype_policy)
    objective = create_objective("softmax")
    model = create_classifier(arch, objective, 4, width_multiplier=0.0625, **kwargs)
    compute_dtype = dtype_policy.split("_")[1]
    assert model.get_layer("normalize").compute_dtype == compute_dtype
    images = np.random.RandomState(1).uniform(size=(2, size, size, 3))
    out = model(images.astype("float32"), training=True)
    assert keras.backend.standardize_dtype(out["pre_logits"].dtype) == compute_dtype
    assert keras.backend.standardize_dtype(out["logits"].dtype) == "float32"
    if "aux_logits" in out:
        assert keras.backend.standardize_dtype(out["aux_logits"].dtype) == "float32"
    loss = keras.ops.mean(objective.per_example_loss(np.array([0, 3]), out["logits"]))
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert np.isfinite(keras.ops.convert_to_numpy(loss))


def test_policy_is_restored_after_mixed_precision_tests():
    assert keras.mixed_precision.global_policy().name == "float32"


# Runs in a fresh interpreter: the logical CPU devices must be configured before
# TensorFlow initialises its devices, which the test process has already done.
_MIRRORED_STEP = textwrap.dedent(
    """
    import json
    import sys

    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

    import keras

    from zoo.models import create_classifier
    from zoo.objectives import create_objective

    GLOBAL_BATCH = 4
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")]
    )
    rng = np.random.RandomState(0)
    for arch, size, sync_bn in json.loads(sys.argv[1]):
        objective = create_objective("softmax")
        with strategy.scope():
            model = create_classifier(
                arch, objective, 3, width_multiplier=0.0625, sync_bn=sync_bn
            )
            optimizer = keras.optimizers.SGD(learning_rate=0.1)
            optimizer.build(model.trainable_variables)
        before = [v.numpy().copy() for v in model.trainable_variables]
        bns = [
            x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)
        ]
        images = rng.uniform(size=(GLOBAL_BATCH, size, size, 3)).astype("float32")
        labels = np.array([0, 1, 2, 1], "int32")
        dataset = tf.data.Dataset.from_tensors((images, labels))
        batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

        def step_fn(images, labels):
            with tf.GradientTape() as tape:
                logits = model(images, training=True)["logits"]
                per_example = objective.per_example_loss(labels, logits)
                loss = tf.reduce_sum(per_example) / GLOBAL_BATCH
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss, tf.shape(images)[0]

        # Eager strategy.run (replicas run in threads): tracing the 2-replica graph
        # with tf.function costs 15-45 s per model on 2 cores, eager ~2-10 s.
        def train_step(images, labels):
            loss, local = strategy.run(step_fn, args=(images, labels))
            loss = strategy.reduce("SUM", loss, None)
            return loss, strategy.experimental_local_results(local)

        loss, local = train_step(*batch)
        after = [v.numpy() for v in model.trainable_variables]
        changed = [
            v.path
            for v, a, b in zip(model.trainable_variables, after, before)
            if not np.array_equal(a, b)
        ]
        print("RESULT " + json.dumps({
            "arch": arch,
            "sync_bn": sync_bn,
            "replicas": strategy.num_replicas_in_sync,
            "local_batches": [int(n) for n in local],
            "loss": float(loss),
            "changed": changed,
            "total": len(after),
            "synchronized": all(bn.synchronized == sync_bn for bn in bns),
        }))
    """
)


def test_mirrored_strategy_step_on_two_cpu_replicas(warm):
    configs = [
        ["resnet50", 32, False],
        ["resnet50", 32, True],
        ["inception_v3", 75, False],
        ["inception_v3", 75, True],
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = warm.run_code(_MIRRORED_STEP, json.dumps(configs), env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [
        json.loads(line[len("RESULT ") :])
        for line in proc.stdout.splitlines()
        if line.startswith("RESULT ")
    ]
    assert [[r["arch"], r["sync_bn"]] for r in results] == [c[::2] for c in configs]
    for r in results:
        assert r["replicas"] == 2, r
        assert r["local_batches"] == [2, 2], r  # the global batch of 4 was split
        assert np.isfinite(r["loss"]) and r["loss"] > 0, r
        assert "logits/kernel" in r["changed"], r
        if r["arch"] == "inception_v3":  # SGD moved every trainable weight
            assert len(r["changed"]) == r["total"], r
        else:  # zero-gamma BNs block the residual branches' first gradients
            assert "stem_conv/kernel" in r["changed"], r
        assert r["synchronized"], r


# The smallest input each registered architecture accepts (its stride and
# 'valid' convolutions), so the sweep below runs every entry at toy size.
MIN_SIZES = {"resnet50": 32, "inception_v3": 75}


def test_every_architecture_has_a_sweep_size():
    assert set(list_architectures()) == set(MIN_SIZES)


@pytest.mark.parametrize("arch", list_architectures())
def test_architecture_sweep_shapes_finite_and_save_reload(arch, tmp_path):
    size = MIN_SIZES[arch]
    keras.utils.set_random_seed(0)
    model = create_classifier(
        arch, create_objective("softmax"), 3, image_size=size, width_multiplier=0.125
    )
    images = np.random.RandomState(0).uniform(size=(2, size, size, 3)).astype("float32")
    out = model(images)
    assert out["logits"].shape == (2, 3)
    assert out["pre_logits"].shape[0] == 2 and len(out["pre_logits"].shape) == 2
    for name, value in out.items():
        assert np.all(np.isfinite(np.asarray(value))), (arch, name)
    path = str(tmp_path / f"{arch}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)(images)
    for name in out:
        np.testing.assert_array_equal(out[name], reloaded[name])
