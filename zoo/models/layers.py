"""Small layers shared by the architectures."""

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
