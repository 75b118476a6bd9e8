"""ResNet-50 v1.5 (He et al. 2016, with the stride on the 3x3 conv), in Keras 3.

Follows the recipe of docs/paper.md: no conv bias, BN momentum 0.9 and epsilon
1e-5, the last BN of every residual block starts with gamma = 0, convs use
variance-scaling initialisation (scale 1, fan-in, truncated normal, as in the
authors' TPU code), strided convs pad explicitly (k - 1 pixels split evenly),
as in the TensorFlow reference ResNet. `width_multiplier` scales every channel
count, so `width_multiplier=0.125` is the same 50-layer graph with 256-d features.
"""

import keras

from zoo.models import ARCHITECTURES
from zoo.models.layers import BatchNormalization, Conv2D, ImageNormalization

STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))  # (bottleneck width, units)
EXPANSION = 4


def _channels(base, width_multiplier):
    return max(1, int(round(base * width_multiplier)))


def _conv(x, filters, kernel_size, strides, name):
    if strides > 1:
        # Explicit, input-size independent padding (the reference "fixed padding").
        pad = kernel_size - 1
        x = keras.layers.ZeroPadding2D(
            ((pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)), name=name + "_pad"
        )(x)
    return Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="valid" if strides > 1 else "same",
        use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(
            scale=1.0, mode="fan_in", distribution="truncated_normal"
        ),
        name=name,
    )(x)


def _bn(x, name, zero_gamma=False, sync_bn=False):
    return BatchNormalization(
        momentum=0.9,
        epsilon=1e-5,
        gamma_initializer="zeros" if zero_gamma else "ones",
        synchronized=sync_bn,
        name=name,
    )(x)


def _bottleneck(x, width, strides, name, sync_bn):
    out_channels = width * EXPANSION
    shortcut = x
    if strides > 1 or x.shape[-1] != out_channels:
        shortcut = _conv(x, out_channels, 1, strides, name + "_proj_conv")
        shortcut = _bn(shortcut, name + "_proj_bn", sync_bn=sync_bn)
    y = _conv(x, width, 1, 1, name + "_conv1")
    y = keras.layers.ReLU(name=name + "_relu1")(_bn(y, name + "_bn1", sync_bn=sync_bn))
    y = _conv(y, width, 3, strides, name + "_conv2")
    y = keras.layers.ReLU(name=name + "_relu2")(_bn(y, name + "_bn2", sync_bn=sync_bn))
    y = _conv(y, out_channels, 1, 1, name + "_conv3")
    y = _bn(y, name + "_bn3", zero_gamma=True, sync_bn=sync_bn)
    y = keras.layers.Add(name=name + "_add")([shortcut, y])
    return keras.layers.ReLU(name=name)(y)


@ARCHITECTURES.register("resnet50")
def resnet50(image_size=None, width_multiplier=1.0, sync_bn=False, name="resnet50"):
    """Returns a ResNet-50 v1.5 backbone: images in [0, 1] -> endpoints.

    Endpoints: "stem" (after the max-pool), "block{stage}_unit{unit}" for every
    residual block (stage 1-4), and "pre_logits" (global average pool,
    2048 * width_multiplier features).

    Args:
      image_size: fixed input side, or None for any size.
      width_multiplier: scales every channel count.
      sync_bn: synchronise BN statistics across replicas.
      name: model name.
    """
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")
    images = keras.Input((image_size, image_size, 3), name="images")
    x = ImageNormalization(name="normalize")(images)
    x = _conv(x, _channels(64, width_multiplier), 7, 2, "stem_conv")
    x = keras.layers.ReLU(name="stem_relu")(_bn(x, "stem_bn", sync_bn=sync_bn))
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem")(x)
    endpoints = {"stem": x}
    for stage, (width, units) in enumerate(STAGES, start=1):
        for unit in range(1, units + 1):
            strides = 2 if unit == 1 and stage > 1 else 1
            block = f"block{stage}_unit{unit}"
            x = _bottleneck(
                x, _channels(width, width_multiplier), strides, block, sync_bn
            )
            endpoints[block] = x
    endpoints["pre_logits"] = keras.layers.GlobalAveragePooling2D(name="pre_logits")(x)
    return keras.Model(images, endpoints, name=name)
