"""Inception v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture"),
in Keras 3.

The graph is the standard TF-slim / Keras one: every conv is a bias-free conv,
BatchNormalization without scale (epsilon 1e-3) and ReLU; the stem and the
grid reductions use 'valid' padding, everything else 'same'. At width 1 it has
the 21,802,784 parameters (BN moving statistics included) of the standard
network without its classifier, 23,851,784 with a 1000-class dense head.

Choices that differ from the Keras application, none of which changes a shape or
a parameter count:
- inputs are float32 images in [0, 1] normalised inside with the ImageNet
  mean / std (`ImageNormalization()` defaults, as for ResNet-50 and the recipe of
  docs/paper.md), not the usual Inception mapping of [0, 1] to [-1, 1];
- BN momentum 0.9 (the recipe's) instead of Keras's 0.99;
- convs use variance-scaling initialisation (scale 1, fan-in, truncated normal),
  as the ResNet-50 of this zoo.

The native resolution is `DEFAULT_IMAGE_SIZE` (299); `image_size=None` builds a
fully convolutional network that accepts any side of at least 75 px.
"""

import keras

from zoo.models import ARCHITECTURES
from zoo.models.layers import BatchNormalization, Conv2D, ImageNormalization

DEFAULT_IMAGE_SIZE = 299
MIN_IMAGE_SIZE = 75


def _channels(base, width_multiplier):
    return max(1, int(round(base * width_multiplier)))


class _Builder:
    """Holds what every conv of one network shares: width, BN type."""

    def __init__(self, width_multiplier, sync_bn):
        self.width_multiplier = width_multiplier
        self.sync_bn = sync_bn

    def conv(self, x, filters, kernel_size, name, strides=1, padding="same"):
        """Conv (no bias) + BN (no scale) + ReLU; `filters` is the width-1 count."""
        x = Conv2D(
            _channels(filters, self.width_multiplier),
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=False,
            kernel_initializer=keras.initializers.VarianceScaling(
                scale=1.0, mode="fan_in", distribution="truncated_normal"
            ),
            name=name + "_conv",
        )(x)
        x = BatchNormalization(
            momentum=0.9,
            epsilon=1e-3,
            scale=False,
            synchronized=self.sync_bn,
            name=name + "_bn",
        )(x)
        return keras.layers.ReLU(name=name + "_relu")(x)


def _avg_pool_branch(b, x, filters, name):
    y = keras.layers.AveragePooling2D(
        3, strides=1, padding="same", name=name + "_pool"
    )(x)
    return b.conv(y, filters, 1, name + "_proj")


def _block_35(b, x, pool_filters, name):
    """35x35 module (figure 5 of the paper): 1x1, 5x5, double 3x3, pool."""
    b1 = b.conv(x, 64, 1, name + "_b1x1")
    b5 = b.conv(x, 48, 1, name + "_b5x5_1")
    b5 = b.conv(b5, 64, 5, name + "_b5x5_2")
    b3 = b.conv(x, 64, 1, name + "_b3x3dbl_1")
    b3 = b.conv(b3, 96, 3, name + "_b3x3dbl_2")
    b3 = b.conv(b3, 96, 3, name + "_b3x3dbl_3")
    bp = _avg_pool_branch(b, x, pool_filters, name + "_bpool")
    return keras.layers.Concatenate(name=name)([b1, b5, b3, bp])


def _reduction_35_to_17(b, x, name):
    """Grid reduction 35 -> 17: strided 3x3, strided double 3x3, max-pool."""
    b3 = b.conv(x, 384, 3, name + "_b3x3", strides=2, padding="valid")
    bd = b.conv(x, 64, 1, name + "_b3x3dbl_1")
    bd = b.conv(bd, 96, 3, name + "_b3x3dbl_2")
    bd = b.conv(bd, 96, 3, name + "_b3x3dbl_3", strides=2, padding="valid")
    bp = keras.layers.MaxPooling2D(3, strides=2, name=name + "_bpool")(x)
    return keras.layers.Concatenate(name=name)([b3, bd, bp])


def _block_17(b, x, mid, name):
    """17x17 module (figure 6): 1x1, factorised 7x7, double factorised 7x7, pool."""
    b1 = b.conv(x, 192, 1, name + "_b1x1")
    b7 = b.conv(x, mid, 1, name + "_b7x7_1")
    b7 = b.conv(b7, mid, (1, 7), name + "_b7x7_2")
    b7 = b.conv(b7, 192, (7, 1), name + "_b7x7_3")
    bd = b.conv(x, mid, 1, name + "_b7x7dbl_1")
    bd = b.conv(bd, mid, (7, 1), name + "_b7x7dbl_2")
    bd = b.conv(bd, mid, (1, 7), name + "_b7x7dbl_3")
    bd = b.conv(bd, mid, (7, 1), name + "_b7x7dbl_4")
    bd = b.conv(bd, 192, (1, 7), name + "_b7x7dbl_5")
    bp = _avg_pool_branch(b, x, 192, name + "_bpool")
    return keras.layers.Concatenate(name=name)([b1, b7, bd, bp])


def _reduction_17_to_8(b, x, name):
    """Grid reduction 17 -> 8: 1x1 + strided 3x3, 1x1 + 7x7 + strided 3x3, pool."""
    b3 = b.conv(x, 192, 1, name + "_b3x3_1")
    b3 = b.conv(b3, 320, 3, name + "_b3x3_2", strides=2, padding="valid")
    b7 = b.conv(x, 192, 1, name + "_b7x7x3_1")
    b7 = b.conv(b7, 192, (1, 7), name + "_b7x7x3_2")
    b7 = b.conv(b7, 192, (7, 1), name + "_b7x7x3_3")
    b7 = b.conv(b7, 192, 3, name + "_b7x7x3_4", strides=2, padding="valid")
    bp = keras.layers.MaxPooling2D(3, strides=2, name=name + "_bpool")(x)
    return keras.layers.Concatenate(name=name)([b3, b7, bp])


def _block_8(b, x, name):
    """8x8 module (figure 7): 1x1, split 3x3, 3x3 + split 3x3, pool."""
    b1 = b.conv(x, 320, 1, name + "_b1x1")
    b3 = b.conv(x, 384, 1, name + "_b3x3_1")
    b3 = keras.layers.Concatenate(name=name + "_b3x3_split")(
        [
            b.conv(b3, 384, (1, 3), name + "_b3x3_2a"),
            b.conv(b3, 384, (3, 1), name + "_b3x3_2b"),
        ]
    )
    bd = b.conv(x, 448, 1, name + "_b3x3dbl_1")
    bd = b.conv(bd, 384, 3, name + "_b3x3dbl_2")
    bd = keras.layers.Concatenate(name=name + "_b3x3dbl_split")(
        [
            b.conv(bd, 384, (1, 3), name + "_b3x3dbl_3a"),
            b.conv(bd, 384, (3, 1), name + "_b3x3dbl_3b"),
        ]
    )
    bp = _avg_pool_branch(b, x, 192, name + "_bpool")
    return keras.layers.Concatenate(name=name)([b1, b3, bd, bp])


def _aux_head(b, x, num_classes):
    """The auxiliary classifier on mixed7 (17x17x768 at 299 px): 5x5/3 average
    pool, 1x1 conv 128, 5x5 'valid' conv 768 (1x1 output), dense.

    When the static grid is smaller than 17 (a fixed `image_size` under 299),
    the pool and conv kernels shrink to fit, as TF-slim does; a larger grid is
    global-average-pooled before the dense layer (at 299 px that pool is the
    identity on the 1x1 map).
    """
    height, width = x.shape[1], x.shape[2]
    pool = (
        min(5, height) if height else 5,
        min(5, width) if width else 5,
    )
    y = keras.layers.AveragePooling2D(pool, strides=3, name="aux_pool")(x)
    y = b.conv(y, 128, 1, "aux_proj")
    height, width = y.shape[1], y.shape[2]
    kernel = (
        min(5, height) if height else 5,
        min(5, width) if width else 5,
    )
    y = b.conv(y, 768, kernel, "aux_conv", padding="valid")
    y = keras.layers.GlobalAveragePooling2D(name="aux_gap")(y)
    return keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.001),
        dtype="float32",  # stays float32 under mixed precision, like the logits
        name="aux_logits",
    )(y)


@ARCHITECTURES.register("inception_v3")
def inception_v3(
    image_size=None,
    width_multiplier=1.0,
    sync_bn=False,
    aux_head=False,
    aux_classes=None,
    name="inception_v3",
):
    """Returns an Inception v3 backbone: images in [0, 1] -> endpoints.

    Images are normalised inside with the ImageNet mean / std (the
    `ImageNormalization()` defaults, as in the recipe), not mapped to [-1, 1]
    as in the usual Inception preprocessing. BN uses momentum 0.9 (the recipe's;
    Keras's InceptionV3 uses 0.99) and epsilon 1e-3, without scale.

    Endpoints: "stem" (35x35x192 at 299 px), "mixed0" ... "mixed10" (the
    eleven Inception modules; 35x35x{256,288,288}, 17x17x768 for mixed3-7,
    8x8x1280 for mixed8, 8x8x2048 for mixed9-10), "pre_logits" (global average
    pool, 2048 * width_multiplier features), and with `aux_head` "aux_logits"
    (float32 [batch, aux_classes]).

    Args:
      image_size: fixed input side, or None for any side >= 75 px (the native
        resolution is DEFAULT_IMAGE_SIZE = 299).
      width_multiplier: scales every channel count (rounded, at least 1).
      sync_bn: synchronise BN statistics across replicas.
      aux_head: add the auxiliary classifier on mixed7. With `image_size=None`
        its kernels are the standard 5x5 ones, which need inputs >= 299 px;
        a smaller fixed `image_size` shrinks them.
      aux_classes: number of classes of the auxiliary head; required with
        `aux_head`.
      name: model name.
    """
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")
    if image_size is not None and image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"inception_v3 needs image_size >= {MIN_IMAGE_SIZE}, got {image_size}"
        )
    if aux_head and not aux_classes:
        raise ValueError("inception_v3: aux_head=True needs aux_classes (a count > 0)")
    b = _Builder(width_multiplier, sync_bn)
    images = keras.Input((image_size, image_size, 3), name="images")
    x = ImageNormalization(name="normalize")(images)
    # Stem: 299 -> 149 -> 147 -> 147 -> 73 -> 73 -> 71 -> 35.
    x = b.conv(x, 32, 3, "stem_1", strides=2, padding="valid")
    x = b.conv(x, 32, 3, "stem_2", padding="valid")
    x = b.conv(x, 64, 3, "stem_3")
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool1")(x)
    x = b.conv(x, 80, 1, "stem_4", padding="valid")
    x = b.conv(x, 192, 3, "stem_5", padding="valid")
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem")(x)
    endpoints = {"stem": x}
    for i, pool_filters in enumerate((32, 64, 64)):
        x = endpoints[f"mixed{i}"] = _block_35(b, x, pool_filters, f"mixed{i}")
    x = endpoints["mixed3"] = _reduction_35_to_17(b, x, "mixed3")
    for i, mid in zip(range(4, 8), (128, 160, 160, 192)):
        x = endpoints[f"mixed{i}"] = _block_17(b, x, mid, f"mixed{i}")
    x = endpoints["mixed8"] = _reduction_17_to_8(b, x, "mixed8")
    for i in (9, 10):
        x = endpoints[f"mixed{i}"] = _block_8(b, x, f"mixed{i}")
    endpoints["pre_logits"] = keras.layers.GlobalAveragePooling2D(name="pre_logits")(x)
    if aux_head:
        endpoints["aux_logits"] = _aux_head(b, endpoints["mixed7"], aux_classes)
    return keras.Model(images, endpoints, name=name)


# The smallest side the architecture accepts (its stride-2 'valid' convolutions
# leave no grid below it); zoo.trainer.validate_config checks configs by it.
inception_v3.min_image_size = MIN_IMAGE_SIZE
