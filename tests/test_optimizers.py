"""FusedSGD (zoo/optimizers.py) against its oracle, Keras's SGD: the same
weights and momentum slots after several steps, with and without Nesterov,
under a schedule, under loss scaling, and under a two-replica
MirroredStrategy on logical CPUs."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.optimizers import FusedSGD


def _steps(optimizer_class, nesterov, momentum=0.9, steps=5, scale=False):
    rng = np.random.default_rng(0)
    variables = [
        keras.Variable(rng.normal(size=(3, 4)).astype("float32")),
        keras.Variable(rng.normal(size=(4,)).astype("float32")),
    ]
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5)
    optimizer = optimizer_class(
        learning_rate=schedule, momentum=momentum, nesterov=nesterov
    )
    if scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(variables)

    @tf.function
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    for _ in range(steps):
        step([tf.constant(rng.normal(size=v.shape), tf.float32) for v in variables])
    inner = optimizer.inner_optimizer if scale else optimizer
    return [v.numpy() for v in variables], [m.numpy() for m in inner.momentums]


@pytest.mark.parametrize(
    "nesterov, momentum, scale",
    [(True, 0.9, False), (False, 0.9, False), (True, 0.0, False), (True, 0.9, True)],
)
def test_fused_sgd_matches_keras_sgd(nesterov, momentum, scale):
    fused = _steps(FusedSGD, nesterov, momentum, scale=scale)
    keras_sgd = _steps(keras.optimizers.SGD, nesterov, momentum, scale=scale)
    for a, b in zip(fused[0] + fused[1], keras_sgd[0] + keras_sgd[1]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(fused[0][0], _steps(FusedSGD, nesterov, momentum, 0)[0][0])


MIRRORED = """
import json, sys
import numpy as np, tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from zoo.optimizers import FusedSGD
out = {}
for name, cls in (("fused", FusedSGD), ("keras", keras.optimizers.SGD)):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        w = keras.Variable(np.arange(6, dtype="float32").reshape(2, 3))
        opt = cls(learning_rate=0.1, momentum=0.9, nesterov=True)
        opt.build([w])
    @tf.function
    def step(x):
        def fn(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(w * x)) / 2.0
            opt.apply_gradients([(tape.gradient(loss, w), w)])
        strategy.run(fn, args=(x,))
    for i in range(4):
        step(tf.constant(float(i + 1)))
    out[name] = [v.numpy().tolist() for v in w.value.values]
print(json.dumps(out))
"""


def test_fused_sgd_under_two_mirrored_replicas(warm):
    result = warm.run_code(MIRRORED)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    fused, reference = np.array(out["fused"]), np.array(out["keras"])
    assert fused.shape == (2, 2, 3)  # one copy per replica
    np.testing.assert_allclose(fused[0], fused[1])  # the replicas agree
    np.testing.assert_allclose(fused, reference, rtol=1e-6)
