"""Datasets: `load_dataset(spec)` returns an ImageDataset for a name or path.

A spec is one of
  * "tfds:NAME": prepared TensorFlow Datasets data ("tfds:cifar10"),
  * a registered name (`list_datasets()`: the embedded digits family),
  * "imagefolder:PATH" or a path to an image folder ROOT/<split>/<class>/*.
"""

import os

from zoo.data.base import DatasetError, ImageDataset
from zoo.data.image_folder import ImageFolderDataset
from zoo.data.preprocessing import eval_preprocess, train_preprocess
from zoo.registry import Registry

DATASETS = Registry("dataset")

TFDS_PREFIX = "tfds:"
FOLDER_PREFIX = "imagefolder:"


def list_datasets(pattern="*"):
    """Returns the sorted registered dataset names matching `pattern`."""
    return DATASETS.names(pattern)


def _looks_like_path(spec):
    return "/" in spec or spec.startswith((".", "~")) or os.path.exists(spec)


def load_dataset(spec, data_dir=None, manual_dir=None):
    """Returns the ImageDataset named by `spec`; raises DatasetError if none.

    Resolution, in order: "tfds:NAME" -> TFDS (read from `data_dir`, never
    downloaded); a registered name -> that dataset; "imagefolder:PATH" or
    anything that looks like a path (has "/", starts with "." or "~", or
    exists) -> an image folder, relative paths resolved against the current
    directory. Dataset names ("tfds:cifar10", "imagefolder:/abs/path", ...)
    are specs too, so a name recorded in a leaderboard loads the same data.

    Args:
      spec: the dataset name or path.
      data_dir: the TFDS data folder (TFDS's default when None).
      manual_dir: TFDS manual-download folder (imagenet2012's tar files),
        used to prepare the data once when it is not prepared yet.
    """
    if not isinstance(spec, str) or not spec:
        raise DatasetError(
            f"dataset spec must be a non-empty string, got {spec!r}; use one of "
            f"{', '.join(list_datasets())}, tfds:NAME, or an image folder path"
        )
    if spec.startswith(TFDS_PREFIX):
        # Imported here: tensorflow_datasets is slow to import and often unused.
        from zoo.data.tfds_dataset import TfdsDataset

        return TfdsDataset(
            spec[len(TFDS_PREFIX) :], data_dir=data_dir, manual_dir=manual_dir
        )
    if spec in DATASETS:
        return DATASETS.create(spec)
    if spec.startswith(FOLDER_PREFIX) or _looks_like_path(spec):
        return ImageFolderDataset(spec.removeprefix(FOLDER_PREFIX))
    raise DatasetError(
        f"unknown dataset '{spec}'; use one of {', '.join(list_datasets())}, "
        "tfds:NAME, or a path to an image folder ROOT/<split>/<class>/*"
    )


# Imported for their registration side effect.
from zoo.data import digits  # noqa: E402,F401

__all__ = [
    "DATASETS",
    "DatasetError",
    "ImageDataset",
    "eval_preprocess",
    "list_datasets",
    "load_dataset",
    "train_preprocess",
]
