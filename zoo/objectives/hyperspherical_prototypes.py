"""Hyperspherical prototype networks (Mettes, van der Pol, Snoek, NeurIPS 2019).

Class prototypes p_1..p_K on the unit sphere of R^d are fixed before training by
minimising the largest pairwise cosine similarity (gradient descent on the
sphere). The head maps features to g(x) in R^d; its "logits" are the cosines
cos(g(x), p_k); the loss is (1 - cos(g(x), p_y))^2 and the prediction
argmax_k cos(g(x), p_k).
"""

import keras
import numpy as np
from keras import ops

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective, ObjectiveError


def optimize_prototypes(num_classes, dim, steps=2000, seed=0):
    """Returns [num_classes, dim] unit vectors with a small largest pairwise cosine.

    Minimises mean_i t log sum_{j != i} exp(cos(p_i, p_j) / t), a smooth form of
    mean_i max_j cos(p_i, p_j), by projected gradient descent while annealing t
    from 0.1 to 0.002, so the result approaches the minimax configuration (the
    regular simplex, pairwise cosine -1/(K-1), whenever K <= d + 1).
    """
    rng = np.random.RandomState(seed)
    p = rng.normal(size=(num_classes, dim))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    if num_classes == 1:
        return p.astype(np.float32)
    off_diagonal = ~np.eye(num_classes, dtype=bool)
    for step in range(steps):
        t = 0.1 * (0.002 / 0.1) ** (step / max(steps - 1, 1))
        g = p @ p.T
        logits = np.where(off_diagonal, g / t, -np.inf)
        w = np.exp(logits - logits.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        grad = (w + w.T) @ p  # d/dp_i of the objective, times K
        # Project onto the tangent space, step, and return to the sphere. The
        # step is proportional to t because the curvature grows as 1 / t.
        grad -= np.sum(grad * p, axis=1, keepdims=True) * p
        p -= t * grad
        p /= np.linalg.norm(p, axis=1, keepdims=True)
    return p.astype(np.float32)


@keras.saving.register_keras_serializable(package="zoo")
class PrototypeHead(keras.layers.Layer):
    """Projects features to R^d and returns cosines to fixed class prototypes.

    Args:
      num_classes: number of classes K.
      dim: prototype dimension d.
      seed: seed of the prototype optimisation.
      steps: prototype optimisation steps.
    """

    def __init__(self, num_classes, dim, seed=0, steps=2000, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.dim = dim
        self.seed = seed
        self.steps = steps

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.dim),
            initializer=keras.initializers.RandomNormal(stddev=0.01),
        )
        self.bias = self.add_weight(name="bias", shape=(self.dim,), initializer="zeros")
        prototypes = optimize_prototypes(
            self.num_classes, self.dim, self.steps, self.seed
        )
        # Saved with the model, never trained.
        self.prototypes = self.add_weight(
            name="prototypes",
            shape=(self.num_classes, self.dim),
            initializer=keras.initializers.Constant(prototypes),
            trainable=False,
        )

    def call(self, features):
        g = ops.matmul(ops.cast(features, "float32"), self.kernel) + self.bias
        g = g / ops.sqrt(ops.sum(ops.square(g), axis=-1, keepdims=True) + 1e-12)
        return ops.matmul(g, ops.transpose(self.prototypes))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "dim": self.dim,
                "seed": self.seed,
                "steps": self.steps,
            }
        )
        return config


@OBJECTIVES.register("hyperspherical_prototypes")
class HypersphericalPrototypes(Objective):
    """Squared cosine loss to fixed, maximally separated class prototypes.

    Args:
      dim: prototype dimension d (None: the number of classes).
      seed: seed of the prototype optimisation.
      steps: prototype optimisation steps.
    """

    name = "hyperspherical_prototypes"

    def __init__(self, dim=None, seed=0, steps=2000):
        self.dim = dim
        self.seed = seed
        self.steps = steps
        if dim is not None and (not isinstance(dim, int) or dim < 2):
            raise ObjectiveError(f"{self.name}: dim must be an integer >= 2, got {dim}")
        if steps < 1:
            raise ObjectiveError(f"{self.name}: steps must be >= 1, got {steps}")

    def hparams(self):
        return {"dim": self.dim, "seed": self.seed, "steps": self.steps}

    def make_head(self, num_classes):
        if num_classes < 2:
            raise ObjectiveError(f"{self.name}: needs K > 1 classes, got {num_classes}")
        return PrototypeHead(
            num_classes, self.dim or num_classes, self.seed, self.steps, name="logits"
        )

    def per_example_loss(self, labels, logits):
        y = ops.one_hot(ops.cast(labels, "int32"), logits.shape[-1])
        cos_y = ops.sum(ops.cast(logits, "float32") * y, axis=-1)
        return ops.square(1.0 - cos_y)
