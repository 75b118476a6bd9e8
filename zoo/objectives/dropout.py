"""Penultimate-layer dropout: CE of the logits computed from x * m / rho with
m ~ Bernoulli(rho), in training only (keep probability rho = 0.7)."""

import keras

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective, ObjectiveError, cross_entropy, dense_head


@keras.saving.register_keras_serializable(package="zoo")
class DropoutHead(keras.layers.Layer):
    """Dropout on the features, then the paper's dense final layer.

    Args:
      num_classes: number of classes K.
      keep_probability: rho in (0, 1].
    """

    def __init__(self, num_classes, keep_probability, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.keep_probability = keep_probability
        # keras Dropout scales kept units by 1 / (1 - rate) = 1 / rho.
        self.dropout = keras.layers.Dropout(1.0 - keep_probability)
        self.dense = dense_head(num_classes, name="dense")

    def build(self, input_shape):
        self.dense.build(input_shape)

    @property
    def kernel(self):
        return self.dense.kernel

    @property
    def bias(self):
        return self.dense.bias

    def call(self, features, training=None):
        x = keras.ops.cast(features, "float32")
        return self.dense(self.dropout(x, training=training))

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_classes": self.num_classes, "keep_probability": self.keep_probability}
        )
        return config


@OBJECTIVES.register("dropout")
class Dropout(Objective):
    """Softmax cross-entropy with dropout on the penultimate features.

    Args:
      keep_probability: rho in (0, 1], 0.7 in the paper.
    """

    name = "dropout"

    def __init__(self, keep_probability=0.7):
        self.keep_probability = keep_probability
        if not 0 < keep_probability <= 1:
            raise ObjectiveError(
                f"{self.name}: keep_probability must be in (0, 1], got "
                f"{keep_probability}"
            )

    def hparams(self):
        return {"keep_probability": self.keep_probability}

    def make_head(self, num_classes):
        return DropoutHead(num_classes, self.keep_probability, name="logits")

    def per_example_loss(self, labels, logits):
        return cross_entropy(labels, logits)
