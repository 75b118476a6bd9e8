"""The ImageNet distribution-shift test sets, read from prepared TFDS data.

Each set is a TFDS name, a split, an optional 200-class subset and the
preprocessing crop. Labels are ImageNet's 1000 class indices in every set
(ImageNet-A and -R included), so a module's 1000 logits score all of them;
ImageNet-A and -R contain only 200 classes and are scored with the logits
restricted to those (index lists in benchmark/data/class_subsets_200.json, a
copy of the lists in the sets' authors' evaluation code). Nothing is
downloaded: a set that is not prepared is a one-line error.
"""

import dataclasses
import functools
import json
import os

import numpy as np
import tensorflow as tf

from zoo.data.base import DatasetError, ensure_rgb, short_message

SUBSETS_FILE = os.path.join(os.path.dirname(__file__), "data", "class_subsets_200.json")
NUM_IMAGENET_CLASSES = 1000

# ImageNet-C's corruptions and AlexNet's top-1 error on each, averaged over
# severities 1-5 (Hendrycks & Dietterich 2019; REFERENCE.md): the mCE
# denominators.
ALEXNET_ERRORS = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
}


@dataclasses.dataclass(frozen=True)
class OodSet:
    """One test set.

    Attributes:
      tfds_name: the TFDS builder name (with config).
      split: the split read.
      subset: key of the 200-class index list in SUBSETS_FILE, or None.
      crop_fraction: center-crop fraction (0.875 for full images; 1.0 for
        ImageNet-C, whose images are already 224 px center crops).
    """

    tfds_name: str
    split: str
    subset: str | None = None
    crop_fraction: float = 0.875

    @property
    def name(self):
        """Returns the leaderboard dataset name, "tfds:<tfds_name>"."""
        return f"tfds:{self.tfds_name}"


OOD_SETS = {
    "imagenet2012": OodSet("imagenet2012", "validation"),
    "imagenet_v2": OodSet("imagenet_v2/matched-frequency", "test"),
    "imagenet_a": OodSet("imagenet_a", "test", subset="imagenet_a"),
    "imagenet_r": OodSet("imagenet_r", "test", subset="imagenet_r"),
    "imagenet_sketch": OodSet("imagenet_sketch", "test"),
}


def corrupted_set(corruption, severity):
    """Returns the OodSet of ImageNet-C `corruption` at `severity` (1-5)."""
    if corruption not in ALEXNET_ERRORS:
        raise ValueError(
            f"unknown ImageNet-C corruption '{corruption}'; choose from "
            f"{', '.join(ALEXNET_ERRORS)}"
        )
    return OodSet(
        f"imagenet2012_corrupted/{corruption}_{severity}",
        "validation",
        crop_fraction=1.0,
    )


@functools.lru_cache(maxsize=None)
def class_subset(name, path=SUBSETS_FILE):
    """Returns the sorted int64 ImageNet class indices of the 200-class `name`
    ("imagenet_a" or "imagenet_r")."""
    with open(path) as f:
        subsets = json.load(f)
    if name not in subsets:
        raise ValueError(f"{path} has no class subset '{name}' ({', '.join(subsets)})")
    indices = np.array(sorted(subsets[name]), dtype=np.int64)
    if len(indices) != 200 or indices.min() < 0 or indices.max() >= 1000:
        raise ValueError(f"class subset '{name}' in {path} is not 200 ImageNet indices")
    return indices


def load_examples(ood_set, data_dir=None, max_examples=None):
    """Returns a tf.data.Dataset of {"image": uint8 [H, W, 3], "label": int64}
    of `ood_set`, in file order (the first `max_examples` when given).

    Raises DatasetError (one line) when the set is unknown or not prepared.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(ood_set.tfds_name, data_dir=data_dir)
        dataset = builder.as_dataset(split=ood_set.split, shuffle_files=False)
    except Exception as error:  # noqa: BLE001 - any failure here means the same
        raise DatasetError(
            f"TFDS set '{ood_set.tfds_name}' (split {ood_set.split}) cannot be read: "
            f'{short_message(error)}; prepare it with "tfds build '
            f'{ood_set.tfds_name}" (ImageNet sets need the manual download) and '
            "pass --data_dir"
        ) from None
    if max_examples:
        dataset = dataset.take(max_examples)
    return dataset.map(
        lambda ex: {
            "image": ensure_rgb(ex["image"]),
            "label": tf.cast(ex["label"], tf.int64),
        },
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
