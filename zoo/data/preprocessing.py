"""Image preprocessing for training and evaluation, one image at a time.

Both functions take a uint8 image [H, W, 3] of any (dynamic) size, work inside
`tf.data.Dataset.map`, and return float32 [size, size, 3] in [0, 1]; pixel
normalisation is part of each model, not of the data.
"""

import tensorflow as tf

# The Inception crop constants of the TensorFlow reference ResNet input pipeline.
MAX_ATTEMPTS = 10
MIN_OBJECT_COVERED = 0.1


def _to_float(image):
    """Returns `image` as float32 in [0, 1] (uint8 is divided by 255)."""
    return tf.image.convert_image_dtype(image, tf.float32)


def _resize(image, size_hw):
    """Returns `image` resized to `size_hw`, bilinear with antialiasing."""
    return tf.image.resize(image, size_hw, method="bilinear", antialias=True)


def _resize_shorter_side(image, target):
    """Returns `image` resized so that its shorter side is `target` pixels."""
    hw = tf.shape(image)[:2]
    scale = tf.cast(target, tf.float32) / tf.cast(tf.reduce_min(hw), tf.float32)
    new_hw = tf.cast(tf.round(tf.cast(hw, tf.float32) * scale), tf.int32)
    return _resize(image, tf.maximum(new_hw, target))  # Guards float rounding.


def _center_crop(image, size):
    """Returns the central `size` x `size` window of `image`."""
    hw = tf.shape(image)[:2]
    top, left = tf.unstack((hw - size) // 2)
    return tf.image.crop_to_bounding_box(image, top, left, size, size)


def _finish(image, size):
    """Returns `image` with its static shape set and values clipped to [0, 1]."""
    return tf.clip_by_value(tf.ensure_shape(image, [size, size, 3]), 0.0, 1.0)


def eval_preprocess(image, size, crop_fraction=0.875):
    """Returns the central crop of `image`: float32 [size, size, 3] in [0, 1].

    The image is resized (bilinear, antialiased) so that its shorter side is
    round(size / crop_fraction), then the central size x size window is kept.
    The default 0.875 is the usual 224-of-256 ImageNet crop; crop_fraction=1.0
    resizes the shorter side to `size` (the linear-probe protocol).

    Args:
      image: uint8 [H, W, 3] (a float image in [0, 1] is also accepted).
      size: the output height and width.
      crop_fraction: the fraction of the shorter side kept, in (0, 1].
    """
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    resized = _resize_shorter_side(_to_float(image), int(round(size / crop_fraction)))
    return _finish(_center_crop(resized, size), size)


def train_preprocess(
    image,
    size,
    seed=None,
    area_range=(0.08, 1.0),
    aspect_ratio_range=(3 / 4, 4 / 3),
    flip=True,
    min_object_covered=MIN_OBJECT_COVERED,
):
    """Returns a random Inception-style crop: float32 [size, size, 3] in [0, 1].

    A window with a random area fraction in `area_range` and aspect ratio in
    `aspect_ratio_range` is sampled (at most 10 attempts, covering at least
    `min_object_covered` of the image, as in the TensorFlow reference ResNet);
    when no attempt succeeds the whole image comes back and the central
    `eval_preprocess` crop is used instead. The window is resized to
    size x size (bilinear, antialiased) and flipped left-right with
    probability 1/2 if `flip`.

    Args:
      image: uint8 [H, W, 3] (a float image in [0, 1] is also accepted).
      size: the output height and width.
      seed: None for stateful random ops, or a stateless seed (int tensor of
        shape [2]): the same seed and image give the same output.
      area_range: (min, max) fraction of the image area kept.
      aspect_ratio_range: (min, max) width / height of the window.
      flip: whether to flip horizontally at random.
      min_object_covered: the least fraction of the image the window covers.
    """
    crop_seed = flip_seed = None
    if seed is not None:
        seed = tf.convert_to_tensor(seed)
        if seed.dtype not in (tf.int32, tf.int64):
            seed = tf.cast(seed, tf.int64)
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed))
    begin, window, _ = _sample_window(
        tf.shape(image), crop_seed, area_range, aspect_ratio_range, min_object_covered
    )
    # The sampler returns the whole image when all attempts fail.
    whole_image = tf.reduce_all(tf.equal(window[:2], tf.shape(image)[:2]))
    cropped = tf.cond(
        whole_image,
        lambda: eval_preprocess(image, size),
        lambda: _resize(_to_float(tf.slice(image, begin, window)), [size, size]),
    )
    if flip:
        if flip_seed is None:
            cropped = tf.image.random_flip_left_right(cropped)
        else:
            cropped = tf.image.stateless_random_flip_left_right(cropped, flip_seed)
    return _finish(cropped, size)


def _sample_window(shape, seed, area_range, aspect_ratio_range, min_object_covered):
    """Returns (begin, size, bbox) of a random window of an image of `shape`."""
    kwargs = dict(
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        min_object_covered=min_object_covered,
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    if seed is None:
        return tf.image.sample_distorted_bounding_box(shape, **kwargs)
    return tf.image.stateless_sample_distorted_bounding_box(shape, seed=seed, **kwargs)
