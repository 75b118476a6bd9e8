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


@keras.saving.register_keras_serializable(package="zoo")
class Conv2D(keras.layers.Conv2D):
    """keras Conv2D that can run a 1x1 convolution as one matrix product.

    With `as_matmul` set (by `use_matmul_pointwise_conv`; the trainer does), a
    call of a 1x1 kernel (any stride, no dilation, one group, channels last)
    computes

        y[n, i, j, :] = x[n, s * i, s * j, :] @ W[0, 0] (+ b),

    as one MatMul over the flattened batch and space (after a strided slice
    when s > 1), instead of oneDNN's convolution kernels, whose per-call cost
    dominates at small images and widths. Same kernel variable, same math,
    same results to float rounding (tests/test_models.py compares the two),
    and the flag is not part of the config: a model builds, saves and loads
    exactly as with Keras's layer. Other kernels and non-TensorFlow backends
    always take Keras's path.
    """

    as_matmul = False

    def call(self, inputs):
        if not (
            self.as_matmul
            and self.kernel_size == (1, 1)
            and self.dilation_rate == (1, 1)
            and self.groups == 1
            and self.data_format == "channels_last"
            and len(inputs.shape) == 4
            and keras.backend.backend() == "tensorflow"
        ):
            return super().call(inputs)
        import tensorflow as tf

        # A 1x1 kernel needs no padding, "same" or "valid": output pixel (i, j)
        # reads input pixel (s * i, s * j).
        if self.strides != (1, 1):
            inputs = inputs[:, :: self.strides[0], :: self.strides[1], :]
        kernel = tf.cast(self.kernel, inputs.dtype)
        channels_in, channels_out = kernel.shape[2], kernel.shape[3]
        flat = tf.matmul(
            tf.reshape(inputs, [-1, channels_in]),
            tf.reshape(kernel, [channels_in, channels_out]),
        )
        if self.use_bias:
            flat = tf.nn.bias_add(flat, tf.cast(self.bias, flat.dtype))
        shape = inputs.shape[:-1]
        if None in shape:
            shape = tf.concat([tf.shape(inputs)[:-1], [channels_out]], axis=0)
        else:  # a constant: no shape ops in the step
            shape = [*shape, channels_out]
        outputs = tf.reshape(flat, shape)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


def use_matmul_pointwise_conv(model, enabled=True):
    """Sets `as_matmul` on every zoo Conv2D of `model` with a 1x1 kernel;
    returns how many.

    Call it before the training step is traced (tf.function traces once)."""
    layers = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, Conv2D) and layer.kernel_size == (1, 1)
    ]
    for layer in layers:
        layer.as_matmul = enabled
    return len(layers)


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
