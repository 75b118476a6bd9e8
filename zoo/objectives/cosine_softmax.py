"""Cosine softmax: CE of z_k = cos(w_k, x) / tau + b_k (docs/paper.md, tau = 0.05)."""

import keras
from keras import ops

from zoo.objectives import OBJECTIVES
from zoo.objectives.base import Objective, cross_entropy


@keras.saving.register_keras_serializable(package="zoo")
class CosineHead(keras.layers.Layer):
    """Logits z_k = <x', w_k'> / temperature + b_k with w_k' = w_k / ||w_k||.

    Args:
      num_classes: number of classes K.
      temperature: tau > 0.
      normalize_features: also L2-normalise x (the paper's definition); False
        gives the authors' released variant (class weights only).
    """

    def __init__(self, num_classes, temperature, normalize_features=True, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.temperature = temperature
        self.normalize_features = normalize_features

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.num_classes),
            initializer=keras.initializers.RandomNormal(stddev=0.01),
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.num_classes,), initializer="zeros"
        )

    def call(self, features):
        x = ops.cast(features, "float32")
        if self.normalize_features:
            x = x / ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + 1e-12)
        w = self.kernel / ops.sqrt(
            ops.sum(ops.square(self.kernel), axis=0, keepdims=True) + 1e-12
        )
        return ops.matmul(x, w) / self.temperature + self.bias

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "temperature": self.temperature,
                "normalize_features": self.normalize_features,
            }
        )
        return config


@OBJECTIVES.register("cosine_softmax")
class CosineSoftmax(Objective):
    """Softmax over temperature-scaled cosine similarities.

    Args:
      temperature: tau, 0.05 in the paper.
      normalize_features: True for the paper's definition (x and w_k
        normalised), False for the authors' released code (w_k only).
    """

    name = "cosine_softmax"

    def __init__(self, temperature=0.05, normalize_features=True):
        self.temperature = temperature
        self.normalize_features = normalize_features
        self._positive(temperature=temperature)

    def hparams(self):
        return {
            "temperature": self.temperature,
            "normalize_features": self.normalize_features,
        }

    def make_head(self, num_classes):
        return CosineHead(
            num_classes,
            self.temperature,
            normalize_features=self.normalize_features,
            name="logits",
        )

    def per_example_loss(self, labels, logits):
        return cross_entropy(labels, logits)
