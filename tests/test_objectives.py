"""Golden tests: every objective's loss and gradient against numpy written here,
and a registry sweep that trains a tiny model with each objective."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.models import create_classifier
from zoo.objectives import ObjectiveError, create_objective, list_objectives
from zoo.registry import RegistryError

RNG = np.random.RandomState(0)
FEATURES = RNG.normal(size=(4, 6)).astype(np.float32)
LABELS = np.array([0, 2, 1, 2])
NUM_CLASSES = 3


def np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def np_cross_entropy(z, y):
    return -np_log_softmax(z)[np.arange(len(y)), y]


def head_loss_and_grads(name, **hparams):
    """Returns (per-example loss, d mean loss / d kernel) through the objective."""
    objective = create_objective(name, **hparams)
    head = objective.make_head(NUM_CLASSES)
    head.build((None, FEATURES.shape[1]))
    kernel = RNG.normal(size=head.kernel.shape).astype(np.float32)
    head.kernel.assign(kernel)
    head.bias.assign(np.array([0.1, -0.2, 0.3], np.float32))
    with tf.GradientTape() as tape:
        logits = head(FEATURES)
        per_example = objective.per_example_loss(LABELS, logits)
        mean = tf.reduce_mean(per_example) + objective.regularization(head)
    grad = tape.gradient(mean, head.kernel)
    return per_example.numpy(), grad.numpy(), kernel


def numeric_grad(fn, w, eps=1e-3):
    grad = np.zeros_like(w, dtype=np.float64)
    for idx in np.ndindex(*w.shape):
        plus, minus = w.astype(np.float64), w.astype(np.float64)
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = (fn(plus) - fn(minus)) / (2 * eps)
    return grad


BIAS = np.array([0.1, -0.2, 0.3])


def softmax_reference(w):
    return np_cross_entropy(FEATURES.astype(np.float64) @ w + BIAS, LABELS)


def cosine_reference(w, tau=0.05, normalize_features=True):
    x = FEATURES.astype(np.float64)
    if normalize_features:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    wn = w / np.linalg.norm(w, axis=0, keepdims=True)
    return np_cross_entropy(x @ wn / tau + BIAS, LABELS)


GOLDEN = {
    ("softmax", ()): softmax_reference,
    ("cosine_softmax", ()): cosine_reference,
    ("cosine_softmax", (("normalize_features", False),)): lambda w: cosine_reference(
        w, normalize_features=False
    ),
    ("cosine_softmax", (("temperature", 0.5),)): lambda w: cosine_reference(w, 0.5),
}


@pytest.mark.parametrize("name,hparams", list(GOLDEN), ids=str)
def test_loss_and_gradient_match_numpy(name, hparams):
    loss, grad, kernel = head_loss_and_grads(name, **dict(hparams))
    reference = GOLDEN[(name, hparams)]
    np.testing.assert_allclose(
        loss, reference(kernel.astype(np.float64)), rtol=1e-4, atol=1e-6
    )
    expected = numeric_grad(lambda w: reference(w).mean(), kernel)
    np.testing.assert_allclose(grad, expected, rtol=2e-3, atol=2e-4)


def test_every_registered_objective_has_a_golden_test():
    covered = {name for name, _ in GOLDEN}
    assert set(list_objectives()) <= covered


@pytest.mark.parametrize("name", list_objectives())
def test_registry_sweep_trains_with_finite_decreasing_loss(name):
    tf.keras.utils.set_random_seed(0)
    objective = create_objective(name)
    model = create_classifier("resnet50", objective, 3, width_multiplier=0.0625)
    images = tf.random.stateless_uniform((12, 32, 32, 3), seed=[0, 1])
    labels = tf.constant([0, 1, 2] * 4)
    optimizer = tf.keras.optimizers.SGD(0.05, momentum=0.9)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = model(images, training=True)["logits"]
            loss = tf.reduce_mean(objective.per_example_loss(labels, logits))
            loss += objective.regularization(model.get_layer("logits"))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    losses = [float(step()) for _ in range(15)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_invalid_hyperparameters_are_one_line_errors():
    with pytest.raises(ObjectiveError, match="temperature must be > 0"):
        create_objective("cosine_softmax", temperature=-1.0)
    with pytest.raises(ObjectiveError, match="bad hyperparameters"):
        create_objective("softmax", temperature=1.0)
    with pytest.raises(RegistryError, match="unknown objective 'softmaxx'"):
        create_objective("softmaxx")
