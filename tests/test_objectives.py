"""Golden tests: every objective's loss and gradient against numpy written here,
and a registry sweep that trains a tiny model with each objective."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.models import create_classifier
from zoo.objectives import ObjectiveError, create_objective, list_objectives
from zoo.objectives.hyperspherical_prototypes import optimize_prototypes
from zoo.registry import RegistryError

RNG = np.random.RandomState(0)
FEATURES = RNG.normal(size=(4, 6)).astype(np.float32)
LABELS = np.array([0, 2, 1, 2])
NUM_CLASSES = 3
BIAS = np.array([0.1, -0.2, 0.3])
ONEHOT = np.eye(NUM_CLASSES)[LABELS]


def np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def np_cross_entropy(z, y=LABELS):
    return -np_log_softmax(z)[np.arange(len(y)), y]


def dense_logits(w):
    return FEATURES.astype(np.float64) @ w + BIAS


def unit(v, axis):
    return v / np.linalg.norm(v, axis=axis, keepdims=True)


# Each reference maps (kernel w, prototypes or None) -> (per-example loss, extra
# scalar term), written from docs/paper.md's formulas independently of zoo/.
def ref_softmax(w, _):
    return np_cross_entropy(dense_logits(w)), 0.0


def ref_cosine(w, _, tau=0.05, normalize_features=True):
    x = FEATURES.astype(np.float64)
    x = unit(x, 1) if normalize_features else x
    return np_cross_entropy(x @ unit(w, 0) / tau + BIAS), 0.0


def ref_label_smoothing(w, _, a=0.1):
    t = (1 - a) * ONEHOT + a / NUM_CLASSES
    return -(t * np_log_softmax(dense_logits(w))).sum(1) / (1 - a), 0.0


def ref_sigmoid(w, _):
    z = dense_logits(w) - np.log(NUM_CLASSES)
    p = 1 / (1 + np.exp(-z))
    return -(ONEHOT * np.log(p) + (1 - ONEHOT) * np.log(1 - p)).sum(1), 0.0


def ref_extra_l2(w, _, lam=8e-4):
    return np_cross_entropy(dense_logits(w)), lam / 2 * np.sum(w**2)


def ref_logit_penalty(w, _, beta=6e-4):
    z = dense_logits(w)
    return np_cross_entropy(z) + beta / 2 * (z**2).sum(1), 0.0


def ref_logit_normalization(w, _, tau=0.04):
    z = dense_logits(w)
    return np_cross_entropy(z / (tau * np.linalg.norm(z, axis=1, keepdims=True))), 0.0


def ref_squared_error(w, _, kappa=9.0, m=60.0, s=10.0):
    z = dense_logits(w)
    true = (z * ONEHOT).sum(1)
    others = (z**2 * (1 - ONEHOT)).sum(1)
    return s * (kappa * (true - m) ** 2 + others), 0.0


def ref_focal(w, _, gamma=3.0):
    log_p = np_log_softmax(dense_logits(w))[np.arange(len(LABELS)), LABELS]
    return -((1 - np.exp(log_p)) ** gamma) * log_p, 0.0


def ref_prototypes(w, prototypes):
    g = unit(dense_logits(w), 1)
    cos = g @ unit(prototypes.astype(np.float64), 1).T
    return (1 - cos[np.arange(len(LABELS)), LABELS]) ** 2, 0.0


GOLDEN = {
    ("softmax", ()): ref_softmax,
    ("cosine_softmax", ()): ref_cosine,
    ("cosine_softmax", (("normalize_features", False),)): lambda w, p: ref_cosine(
        w, p, normalize_features=False
    ),
    ("cosine_softmax", (("temperature", 0.5),)): lambda w, p: ref_cosine(w, p, 0.5),
    ("label_smoothing", ()): ref_label_smoothing,
    ("label_smoothing", (("alpha", 0.3),)): lambda w, p: ref_label_smoothing(w, p, 0.3),
    ("sigmoid", ()): ref_sigmoid,
    ("extra_final_layer_l2", ()): ref_extra_l2,
    ("extra_final_layer_l2", (("l2", 0.5),)): lambda w, p: ref_extra_l2(w, p, 0.5),
    # At inference dropout is the identity, so the loss is softmax's.
    ("dropout", ()): ref_softmax,
    ("logit_penalty", ()): ref_logit_penalty,
    ("logit_penalty", (("beta", 0.1),)): lambda w, p: ref_logit_penalty(w, p, 0.1),
    ("logit_normalization", ()): ref_logit_normalization,
    ("logit_normalization", (("temperature", 1.0),)): lambda w, p: (
        ref_logit_normalization(w, p, 1.0)
    ),
    ("squared_error", ()): ref_squared_error,
    ("squared_error", (("kappa", 1.0), ("target", 1.0), ("scale", 1.0))): (
        lambda w, p: ref_squared_error(w, p, 1.0, 1.0, 1.0)
    ),
    ("focal", ()): ref_focal,
    ("focal", (("gamma", 0.0),)): lambda w, p: ref_focal(w, p, 0.0),
    ("hyperspherical_prototypes", ()): ref_prototypes,
}


def objective_loss_and_grad(name, **hparams):
    """Returns (per-example loss, d(mean loss + extra)/d kernel, kernel,
    prototypes) computed through the objective and its head."""
    objective = create_objective(name, **hparams)
    head = objective.make_head(NUM_CLASSES)
    head.build((None, FEATURES.shape[1]))
    kernel = RNG.normal(size=head.kernel.shape).astype(np.float32)
    head.kernel.assign(kernel)
    head.bias.assign(BIAS.astype(np.float32))
    prototypes = getattr(head, "prototypes", None)
    with tf.GradientTape() as tape:
        logits = head(FEATURES)
        per_example = objective.per_example_loss(LABELS, logits)
        total = tf.reduce_mean(per_example) + objective.regularization(head)
    grad = tape.gradient(total, head.kernel)
    protos = None if prototypes is None else np.asarray(prototypes)
    return per_example.numpy(), grad.numpy(), kernel, protos


def numeric_grad(fn, w, eps=1e-4):
    grad = np.zeros_like(w, dtype=np.float64)
    for idx in np.ndindex(*w.shape):
        plus, minus = w.astype(np.float64), w.astype(np.float64)
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = (fn(plus) - fn(minus)) / (2 * eps)
    return grad


@pytest.mark.parametrize("name,hparams", list(GOLDEN), ids=str)
def test_loss_and_gradient_match_numpy(name, hparams):
    loss, grad, kernel, prototypes = objective_loss_and_grad(name, **dict(hparams))
    reference = GOLDEN[(name, hparams)]
    w = kernel.astype(np.float64)
    expected_loss, _ = reference(w, prototypes)
    np.testing.assert_allclose(loss, expected_loss, rtol=2e-4, atol=1e-5)

    def total(v):
        per_example, extra = reference(v, prototypes)
        return per_example.mean() + extra

    expected = numeric_grad(total, w)
    scale = max(np.abs(expected).max(), 1e-3)
    np.testing.assert_allclose(grad, expected, rtol=2e-3, atol=2e-3 * scale)


def test_every_registered_objective_has_a_golden_test():
    assert set(list_objectives()) == {name for name, _ in GOLDEN}


def test_dropout_head_drops_and_rescales_in_training_only():
    objective = create_objective("dropout", keep_probability=0.7)
    head = objective.make_head(64)
    head.build((None, 64))
    head.kernel.assign(np.eye(64, dtype=np.float32))
    head.bias.assign(np.zeros(64, np.float32))
    x = np.ones((200, 64), np.float32)
    np.testing.assert_allclose(head(x, training=False), x)
    out = head(x, training=True).numpy()
    dropped, kept = np.isclose(out, 0.0), np.isclose(out, 1 / 0.7)
    assert np.all(dropped | kept)
    assert abs(np.mean(kept) - 0.7) < 0.02


@pytest.mark.parametrize("k,d", [(3, 2), (4, 3), (11, 10), (30, 29)])
def test_prototypes_reach_the_simplex_when_k_is_d_plus_1(k, d):
    p = optimize_prototypes(k, d)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-5)
    cos = p @ p.T
    off_diagonal = cos[~np.eye(k, dtype=bool)]
    np.testing.assert_allclose(off_diagonal, -1.0 / d, atol=1e-3)


def test_prototypes_are_saved_with_the_model_and_not_trained(tmp_path):
    objective = create_objective("hyperspherical_prototypes", dim=4)
    model = create_classifier("resnet50", objective, 5, width_multiplier=0.0625)
    head = model.get_layer("logits")
    assert head.prototypes.shape == (5, 4)
    assert all(v is not head.prototypes for v in model.trainable_variables)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    fresh = create_classifier(
        "resnet50",
        create_objective("hyperspherical_prototypes", dim=4, seed=1),
        5,
        width_multiplier=0.0625,
    )
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.get_layer("logits").prototypes, head.prototypes)


@pytest.mark.parametrize("name", list_objectives())
def test_registry_sweep_trains_with_finite_decreasing_loss(name):
    # A tiny model (one hidden layer + the objective's head) keeps the sweep
    # fast; the ResNet-50 path is covered by the end-to-end tests.
    tf.keras.utils.set_random_seed(0)
    objective = create_objective(name)
    inputs = tf.keras.Input((16,))
    hidden = tf.keras.layers.Dense(32, activation="relu")(inputs)
    model = tf.keras.Model(inputs, objective.make_head(3)(hidden))
    x = tf.random.stateless_normal((24, 16), seed=[0, 1])
    labels = tf.constant([0, 1, 2] * 8)
    # Squared error's loss is ~1e4 at the start (M = 60, s = 10): scale the step.
    lr = 1e-5 if name == "squared_error" else 0.05
    optimizer = tf.keras.optimizers.SGD(lr, momentum=0.9)

    def step():
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(objective.per_example_loss(labels, logits))
            loss += objective.regularization(model.layers[-1])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return float(loss)

    losses = [step() for _ in range(30)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3])


@pytest.mark.parametrize(
    "name,hparams,message",
    [
        ("cosine_softmax", {"temperature": -1.0}, "temperature must be > 0"),
        ("logit_normalization", {"temperature": 0.0}, "temperature must be > 0"),
        ("dropout", {"keep_probability": 0.0}, r"keep_probability must be in \(0, 1\]"),
        ("dropout", {"keep_probability": 1.5}, r"keep_probability must be in \(0, 1\]"),
        ("label_smoothing", {"alpha": 1.0}, r"alpha must be in \[0, 1\)"),
        ("logit_penalty", {"beta": -1.0}, "beta must be >= 0"),
        ("extra_final_layer_l2", {"l2": -1.0}, "l2 must be >= 0"),
        ("focal", {"gamma": -0.5}, "gamma must be >= 0"),
        ("squared_error", {"kappa": 0.0}, "kappa must be > 0"),
        ("hyperspherical_prototypes", {"dim": 1}, "dim must be an integer >= 2"),
        ("softmax", {"temperature": 1.0}, "bad hyperparameters"),
    ],
)
def test_invalid_hyperparameters_are_one_line_errors(name, hparams, message):
    with pytest.raises(ObjectiveError, match=message) as error:
        create_objective(name, **hparams)
    assert "\n" not in str(error.value)


def test_prototypes_need_more_than_one_class():
    with pytest.raises(ObjectiveError, match="needs K > 1"):
        create_objective("hyperspherical_prototypes").make_head(1)


def test_unknown_objective_is_a_one_line_error():
    with pytest.raises(RegistryError, match="unknown objective 'softmaxx'"):
        create_objective("softmaxx")
