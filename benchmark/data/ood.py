"""The ImageNet distribution-shift test sets, read from prepared TFDS data.

Each set is a name (the leaderboard's and the spec's), a TFDS name, a split,
an optional 200-class subset and the preprocessing crop; the harness reads it
as an ImageDataset (`benchmark.data.transfer.load_benchmark_dataset`). Labels are
ImageNet's 1000 class indices in every set (ImageNet-A and -R included), so a
module's 1000 logits score all of them;
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

SUBSETS_FILE = os.path.join(os.path.dirname(__file__), "class_subsets_200.json")
NUM_IMAGENET_CLASSES = 1000

# ImageNet-C's corruptions and AlexNet's top-1 error on each, averaged over
# severities 1-5 (Hendrycks & Dietterich 2019; docs/paper.md): the mCE
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
      name: the leaderboard dataset name ("imagenet_v2"), also its spec.
      tfds_name: the TFDS builder name (with config).
      split: the split read.
      subset: key of the 200-class index list in SUBSETS_FILE, or None.
      crop_fraction: center-crop fraction (0.875 for full images; 1.0 for
        ImageNet-C, whose images are already 224 px center crops).
    """

    name: str
    tfds_name: str
    split: str
    subset: str | None = None
    crop_fraction: float = 0.875


OOD_SETS = {
    "imagenet2012": OodSet("imagenet2012", "imagenet2012", "validation"),
    "imagenet_v2": OodSet("imagenet_v2", "imagenet_v2/matched-frequency", "test"),
    "imagenet_a": OodSet("imagenet_a", "imagenet_a", "test", subset="imagenet_a"),
    "imagenet_r": OodSet("imagenet_r", "imagenet_r", "test", subset="imagenet_r"),
    "imagenet_sketch": OodSet("imagenet_sketch", "imagenet_sketch", "test"),
}
CORRUPTED_PREFIX = "imagenet2012_corrupted/"


def corrupted_set(corruption, severity):
    """Returns the OodSet of ImageNet-C `corruption` at `severity` (1-5)."""
    if corruption not in ALEXNET_ERRORS:
        raise ValueError(
            f"unknown ImageNet-C corruption '{corruption}'; choose from "
            f"{', '.join(ALEXNET_ERRORS)}"
        )
    name = f"{CORRUPTED_PREFIX}{corruption}_{severity}"
    return OodSet(name, name, "validation", crop_fraction=1.0)


def find_set(name):
    """Returns the OodSet named `name` (an OOD_SETS key or
    "imagenet2012_corrupted/<corruption>_<severity>"), or None."""
    if name in OOD_SETS:
        return OOD_SETS[name]
    if isinstance(name, str) and name.startswith(CORRUPTED_PREFIX):
        corruption, _, severity = name[len(CORRUPTED_PREFIX) :].rpartition("_")
        if corruption in ALEXNET_ERRORS and severity in "12345" and severity:
            return corrupted_set(corruption, int(severity))
    return None


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
