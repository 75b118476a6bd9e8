"""The dataset interface shared by every image source (embedded, folders, TFDS).

A dataset is a named set of labelled RGB images split into named splits. Every
split is read in one fixed order (no shuffling here: that is the trainer's job),
so a subset such as "the first 3 images of each class" means the same images on
every machine, and a feature cache can be keyed by `fingerprint()`.
"""

import abc
import hashlib
import os
import re

import numpy as np
import tensorflow as tf

# Preferred names of the held-out split, in order.
TEST_SPLIT_NAMES = ("test", "validation", "val")


class DatasetError(ValueError):
    """A dataset cannot be found or read; the message says how to fix it."""


class ImageDataset(abc.ABC):
    """A labelled image dataset with named splits, read in a deterministic order.

    Subclasses set, in `__init__`:
      name: the canonical string recorded in leaderboards ("digits_0to4",
        "tfds:cifar10", "imagefolder:/abs/path").
      class_names: list of str, the class of label i is `class_names[i]`.
      splits: tuple of the available split names.
      train_split: the split to train on (usually "train").

    Elements of `as_dataset` are dicts with "image" (tf.uint8 [H, W, 3]), "label"
    (tf.int64 scalar in [0, num_classes)) and "id" (tf.string scalar, unique
    within the dataset).
    """

    name: str
    class_names: list
    splits: tuple
    train_split: str = "train"

    @property
    def num_classes(self):
        """Returns the number of classes."""
        return len(self.class_names)

    @property
    def test_split(self):
        """Returns "test", else "validation", else "val"; None if none exists."""
        for split in TEST_SPLIT_NAMES:
            if split in self.splits:
                return split
        return None

    @abc.abstractmethod
    def _all_labels(self, split):
        """Returns the int64 labels of every example of `split`, in order."""

    @abc.abstractmethod
    def as_dataset(self, split, *, max_per_class=None):
        """Returns a tf.data.Dataset of {"image", "label", "id"} dicts, in order.

        Args:
          split: a name from `splits`.
          max_per_class: keep only the first N examples of each class.
        """

    @abc.abstractmethod
    def fingerprint(self):
        """Returns a short hex string that changes when the selected data does."""

    def source_paths(self):
        """Returns the files and folders this dataset reads (what a sandboxed
        benchmark run is given, read-only); () for data a package ships."""
        return ()

    def size_hint(self, max_per_class=None):
        """Returns about how many images all splits hold after
        `max_per_class` (for time bounds; no pass over the data)."""
        return sum(
            self.num_examples(s, max_per_class=max_per_class) for s in self.splits
        )

    def labels(self, split, *, max_per_class=None):
        """Returns the int64 numpy labels of `split`, in `as_dataset` order."""
        labels = self._all_labels(self._check_split(split))
        return labels[select_first_per_class(labels, max_per_class)]

    def num_examples(self, split, *, max_per_class=None):
        """Returns the number of examples of `split` after `max_per_class`."""
        return len(self.labels(split, max_per_class=max_per_class))

    def as_numpy_iterator(self, split, *, max_per_class=None):
        """Returns an iterator over the examples of `split` as numpy dicts.

        "image" is a uint8 array [H, W, 3], "label" an int, "id" a str. Unlike
        iterating `as_dataset` directly, a read failure is raised as a
        DatasetError that names the offending example where the source can.
        """
        # Built here, not in the generator, so a bad split fails at the call.
        dataset = self.as_dataset(split, max_per_class=max_per_class)
        return self._numpy_examples(dataset, split, max_per_class)

    def _numpy_examples(self, dataset, split, max_per_class):
        """Yields the elements of `dataset` as numpy dicts (see as_numpy_iterator)."""
        position = 0
        try:
            for element in dataset.as_numpy_iterator():
                yield {
                    "image": element["image"],
                    "label": int(element["label"]),
                    "id": element["id"].decode("utf-8"),
                }
                position += 1
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            raise self._read_error(split, max_per_class, position, error) from error

    def _read_error(self, split, max_per_class, position, error):
        """Returns the DatasetError for a failure reading example `position`."""
        del max_per_class  # Used by sources that can name the failing file.
        return DatasetError(
            f"dataset '{self.name}': cannot read example {position} of split "
            f"'{split}': {short_message(error)}; check or re-prepare the data"
        )

    def _check_split(self, split):
        """Returns `split` if it exists, else raises a DatasetError."""
        if split not in self.splits:
            raise DatasetError(
                f"dataset '{self.name}' has no split '{split}'; use one of: "
                f"{', '.join(self.splits)}"
            )
        return split

    def __repr__(self):
        return (
            f"{type(self).__name__}(name={self.name!r}, "
            f"num_classes={self.num_classes}, splits={self.splits!r})"
        )


def select_first_per_class(labels, max_per_class):
    """Returns the sorted indices of the first `max_per_class` examples per label.

    `max_per_class=None` keeps everything.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if max_per_class is None:
        return np.arange(len(labels))
    if isinstance(max_per_class, bool) or not isinstance(
        max_per_class, (int, np.integer)
    ):
        raise DatasetError(
            f"max_per_class must be a positive integer or None, got {max_per_class!r}"
        )
    if max_per_class < 1:
        raise DatasetError(
            f"max_per_class must be a positive integer or None, got {max_per_class}"
        )
    # Rank of each example among the earlier examples of its class.
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels)) - starts
    return np.flatnonzero(rank < max_per_class)


def ensure_rgb(image):
    """Returns `image` [H, W, C] with exactly 3 channels (gray is replicated)."""
    channels = image.shape[-1]
    if channels == 3:
        return image
    if channels in (1, 2):  # Gray, or gray + alpha.
        return tf.image.grayscale_to_rgb(image[..., :1])
    if channels is not None and channels > 3:
        return image[..., :3]  # Drop alpha.
    # Unknown channel count: tiling then slicing is right for 1, 3 and 4.
    return tf.tile(image, [1, 1, 3])[..., :3]


def decode_image_file(path):
    """Returns the uint8 [H, W, 3] image of the file `path` (a string tensor);
    grayscale images are replicated to three channels."""
    image = tf.io.decode_image(
        tf.io.read_file(path), channels=3, expand_animations=False
    )
    image.set_shape([None, None, 3])
    return image


def undecodable_file_error(paths):
    """Returns the DatasetError naming the first of `paths` that does not
    decode as an image, or None when all of them do (the one-line error of
    every file-based source: the failing element, since reading keeps order)."""
    for path in paths:
        try:
            decode_image_file(tf.constant(path))
        except tf.errors.OpError as file_error:
            return DatasetError(
                f"cannot decode image {path}: {short_message(file_error)}; "
                "delete or replace the file"
            )
    return None


def short_message(error):
    """Returns the first line of a TF error without the op/function decoration."""
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*", "", text)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def clip_words(text, limit=300):
    """Returns `text` cut to at most `limit` characters at a word boundary,
    with " ..." marking a cut; shorter text is returned whole."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 4]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + " ..."


# (path, inode, size, mtime_ns, ctime_ns) -> sha256 of the file's bytes, for
# this process: a file is read once however many datasets fingerprint it.
_FILE_DIGESTS = {}


def file_digest(path):
    """Returns the sha256 hex digest of the bytes of the file at `path`.

    Fingerprints hash what files hold, not when they were written: data
    whose modification times are reset (copied again to the same place, a
    checkout, a synced mount) keeps its rows in one protocol group and its
    features in the cache. The digest is
    remembered for the life of the process, per path, inode, size and
    both times (a write changes ctime even where mtime is set back).
    """
    stat = os.stat(path)
    key = (path, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        _FILE_DIGESTS[key] = digest
    return digest


def hash_parts(*parts):
    """Returns the first 16 hex digits of the sha256 of `parts`, in order.

    bytes are hashed as they are, anything else as its str().
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode("utf-8"))
        digest.update(b"\0")  # Separator, so ("ab", "c") != ("a", "bc").
    return digest.hexdigest()[:16]
