"""Input normalisations: how a module wants its pixels, by name.

Images enter every module interface of this project as float32 RGB in
[0, 1] (TF-Hub's image convention); a normalisation maps them onto what a
module was trained on:

  unit               x                          [0, 1] (TF-Hub, zoo-export)
  minus_one_one      2 x - 1                    [-1, 1] (Inception, MobileNet v1/v2)
  imagenet_mean_std  (x - mean) / std           per channel, mean (0.485, 0.456,
                                                0.406), std (0.229, 0.224, 0.225)
                                                (torchvision, the authors' release)
  0_255              255 x                      float [0, 255] (Keras applications
                                                with built-in preprocessing)
  uint8              round(255 x)               integers 0..255, cast to the
                                                module's input dtype

A linear range that is none of these ("low,high", --value_range) is
`low + (high - low) x`, named "range". The benchmark records the name in
every row's protocol, so a row says what its module was fed.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# name -> the linear range it maps [0, 1] onto, or None when it is not linear.
NORMALIZATIONS = {
    "unit": (0.0, 1.0),
    "minus_one_one": (-1.0, 1.0),
    "imagenet_mean_std": None,
    "0_255": (0.0, 255.0),
    "uint8": (0.0, 255.0),
}
RANGE = "range"
DEFAULT = "unit"


class NormalizationError(ValueError):
    """An unknown normalisation name; the message lists the known ones."""


def check(name):
    """Returns `name` if it is a known normalisation, else raises."""
    if name not in NORMALIZATIONS:
        raise NormalizationError(
            f"unknown input normalisation '{name}'; use one of "
            f"{', '.join(NORMALIZATIONS)} (or --value_range=LOW,HIGH)"
        )
    return name


def parse_value_range(value):
    """Returns (low, high) floats from "low,high" or a pair; None stays None."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        low, high = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise NormalizationError(
            f"value range must be two numbers 'low,high' (e.g. 0,1 or 0,255 or "
            f"-1,1), got {value!r}"
        ) from None
    if not low < high:
        raise NormalizationError(f"value range needs low < high, got {low},{high}")
    return low, high


def check_options(name, value_range):
    """Raises NormalizationError unless a normalisation name and a value
    range (either may be None, not both set) are valid; imports nothing."""
    if name is not None and value_range is not None:
        raise NormalizationError(
            "pass --input_normalization or --value_range, not both (a value "
            "range is a linear normalisation)"
        )
    if name is not None:
        check(name)
    parse_value_range(value_range)


def name_of_range(low, high):
    """Returns the name of the linear normalisation onto [low, high]
    ("unit", "minus_one_one", "0_255"), or RANGE for any other range."""
    for name, bounds in NORMALIZATIONS.items():
        if name != "uint8" and bounds == (float(low), float(high)):
            return name
    return RANGE


def apply(images, name, value_range=None, dtype="float32"):
    """Returns float images in [0, 1] normalised by `name` (RANGE: onto
    `value_range`) and cast to `dtype`; integer dtypes and "uint8" round to
    whole numbers and clip to the dtype's range."""
    import tensorflow as tf

    images = tf.convert_to_tensor(images, tf.float32)
    dtype = tf.as_dtype(dtype)
    if name == "imagenet_mean_std":
        images = (images - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)
    else:
        low, high = value_range if name == RANGE else NORMALIZATIONS[check(name)]
        if (low, high) != (0.0, 1.0):
            images = low + (high - low) * images
        if name == "uint8" or dtype.is_integer:
            images = tf.round(images)
    if dtype.is_integer:
        images = tf.clip_by_value(images, dtype.min, dtype.max)
    return tf.cast(images, dtype)
