"""The embedded default datasets: scikit-learn's bundled handwritten digits.

`sklearn.datasets.load_digits` ships 1,797 real 8x8 grayscale digits (values
0..16) inside the package, so these datasets work offline and need no download.
They are small enough for tests and demos, and the two 5-class halves give a
real (if tiny) transfer task: train on `digits_0to4`, transfer to `digits_5to9`.
"""

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

from zoo.data import DATASETS
from zoo.data.base import ImageDataset, hash_parts, select_first_per_class

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def _digits_arrays():
    """Returns (images uint8 [N, 8, 8, 3], targets int64 [N]) in sklearn order."""
    bunch = load_digits()
    gray = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images = np.repeat(gray[..., np.newaxis], 3, axis=-1)
    return images, bunch.target.astype(np.int64)


def _split_indices(targets, digit):
    """Returns (train, test) sorted sklearn indices of one digit.

    A fresh RandomState(SPLIT_SEED) permutes the digit's indices and the first
    round(20%) go to test, so the split of a digit depends on nothing else: the
    subsets `digits_0to4` and `digits_5to9` split exactly like `digits`.
    """
    indices = np.flatnonzero(targets == digit)
    permuted = indices[np.random.RandomState(SPLIT_SEED).permutation(len(indices))]
    num_test = int(round(TEST_FRACTION * len(indices)))
    return np.sort(permuted[num_test:]), np.sort(permuted[:num_test])


class DigitsDataset(ImageDataset):
    """Digits from `sklearn.datasets.load_digits`, with a fixed stratified split.

    Splits "train" and "test": for every digit, 20% (rounded) of its images go
    to "test", chosen by a numpy RandomState(0) permutation of that digit's
    images (a fresh generator per digit). Both splits keep sklearn's order.
    Images are uint8 round(value * 255 / 16) at the native 8x8, replicated to 3
    channels; ids are "digits/NNNN", the index in `load_digits()` order.

    Args:
      name: the registered name.
      digits: the digits to keep, in label order (label i is `digits[i]`).
    """

    def __init__(self, name, digits):
        self.name = name
        self.digits = tuple(int(d) for d in digits)
        self.class_names = [str(d) for d in self.digits]
        self.splits = ("train", "test")
        self.train_split = "train"
        self._images, targets = _digits_arrays()
        # Map digits to labels 0..k-1; other digits get -1 and are dropped.
        to_label = np.full(10, -1, dtype=np.int64)
        to_label[list(self.digits)] = np.arange(len(self.digits))
        self._labels = to_label[targets]
        self._indices = {}
        for split, position in (("train", 0), ("test", 1)):
            parts = [_split_indices(targets, d)[position] for d in self.digits]
            self._indices[split] = np.sort(np.concatenate(parts))

    def _all_labels(self, split):
        return self._labels[self._indices[split]]

    def _selected(self, split, max_per_class):
        """Returns the sklearn indices of `split` after `max_per_class`."""
        indices = self._indices[self._check_split(split)]
        return indices[select_first_per_class(self._labels[indices], max_per_class)]

    def as_dataset(self, split, *, max_per_class=None):
        """Returns the {"image", "label", "id"} tf.data.Dataset of `split`."""
        indices = self._selected(split, max_per_class)
        return tf.data.Dataset.from_tensor_slices(
            {
                "image": self._images[indices],
                "label": self._labels[indices],
                "id": np.array([f"digits/{i:04d}" for i in indices]),
            }
        )

    def fingerprint(self):
        """Returns a hash of the name, the classes, the split indices and pixels."""
        return hash_parts(
            self.name,
            self.class_names,
            *(self._indices[s].tolist() for s in self.splits),
            self._images.tobytes(),
            self._labels.tobytes(),
        )


@DATASETS.register("digits")
def digits():
    """Returns all 10 digits, labels 0..9."""
    return DigitsDataset("digits", range(10))


@DATASETS.register("digits_0to4")
def digits_0to4():
    """Returns digits 0-4, labels 0..4."""
    return DigitsDataset("digits_0to4", range(5))


@DATASETS.register("digits_5to9")
def digits_5to9():
    """Returns digits 5-9 as labels 0..4 (class_names "5".."9")."""
    return DigitsDataset("digits_5to9", range(5, 10))
