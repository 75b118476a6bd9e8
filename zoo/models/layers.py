"""Small layers shared by the architectures."""

import math

import keras
from keras import ops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="zoo")
class ImageNormalization(keras.layers.Layer):
    """Maps images in [0, 1] to (x - mean) / std per channel; no weights.

    Args:
      mean: per-channel mean, ImageNet's by default.
      std: per-channel standard deviation, ImageNet's by default.
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def call(self, images):
        mean = ops.cast(ops.array(self.mean), images.dtype)
        std = ops.cast(ops.array(self.std), images.dtype)
        return (images - mean) / std

    def get_config(self):
        config = super().get_config()
        config.update({"mean": self.mean, "std": self.std})
        return config


@keras.saving.register_keras_serializable(package="zoo")
class BatchNormalization(keras.layers.BatchNormalization):
    """keras BatchNormalization that can train through TensorFlow's fused kernel.

    With `fused` set (by `use_fused_batch_norm`; the trainer does), a
    training-mode call computes

        y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta,
        moving <- momentum * moving + (1 - momentum) * batch statistic,

    with mean_B and the biased variance var_B over batch and space, in one
    FusedBatchNormV3 kernel forward and one backward, instead of the dozen
    composite ops of Keras's layer. Same variables, same update rule, same
    results to float rounding (tests/test_models.py compares the two). The
    flag is not part of the config: a model builds, saves and loads exactly
    as with Keras's layer, and inference, masked or synchronized (cross-replica)
    batch norm and non-TensorFlow backends always take Keras's path.
    """

    fused = False

    def call(self, inputs, training=None, mask=None):
        if not (
            self.fused
            and training
            and self.trainable
            and mask is None
            and not self.synchronized
            and not self.renorm
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and keras.backend.backend() == "tensorflow"
        ):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        empty = tf.constant([], "float32")
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=gamma,
            offset=beta,
            mean=empty,
            variance=empty,
            epsilon=self.epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel returns the Bessel-corrected variance; Keras's layer
        # averages the biased one, (n - 1) / n of it.
        momentum = self.momentum
        shape = inputs.shape[:-1]
        if None in shape:
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
            variance_rate = (1.0 - momentum) * (count - 1.0) / tf.maximum(count, 1.0)
        else:  # a constant: no ops in the step
            count = math.prod(shape)
            variance_rate = (1.0 - momentum) * (count - 1) / max(count, 1)
        self.moving_mean.assign(
            tf.cast(self.moving_mean, "float32") * momentum + mean * (1.0 - momentum)
        )
        self.moving_variance.assign(
            tf.cast(self.moving_variance, "float32") * momentum
            + variance * variance_rate
        )
        return tf.cast(outputs, self.compute_dtype)


def use_fused_batch_norm(model, enabled=True):
    """Sets `fused` on every zoo BatchNormalization of `model`; returns how many.

    Call it before the training step is traced (tf.function traces once)."""
    layers = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, BatchNormalization)
    ]
    for layer in layers:
        layer.fused = enabled
    return len(layers)
