"""Image-folder datasets: ROOT/<split>/<class>/<image files>.

A ROOT whose sub-folders hold images directly (ROOT/<class>/*.jpg) is one
"train" split. Classes are the sorted class folder names of the train split and
every split must have the same class folders. Hidden files and folders (".*")
and files without an image extension are ignored.

Undecodable images: the policy is to fail, naming the file. Iterating
`as_dataset` raises tf.errors.InvalidArgumentError (tf.data cannot say which
file failed); `as_numpy_iterator` raises a DatasetError naming the file.
"""

import os

import numpy as np
import tensorflow as tf

from zoo.data.base import (
    DatasetError,
    ImageDataset,
    decode_image_file,
    file_digest,
    hash_parts,
    select_first_per_class,
    undecodable_file_error,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
LAYOUT = "ROOT/<split>/<class>/*.jpg"


def _visible_entries(path):
    """Returns the sorted os.DirEntry list of `path`, without hidden entries."""
    with os.scandir(path) as entries:
        return sorted((e for e in entries if not e.name.startswith(".")), key=_name)


def _name(entry):
    return entry.name


def _is_image(entry):
    return entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS)


def _subdirs(path):
    """Returns the sorted names of the visible sub-folders of `path`."""
    return [e.name for e in _visible_entries(path) if e.is_dir()]


def _image_names(path):
    """Returns the sorted names of the image files directly in `path`."""
    return [e.name for e in _visible_entries(path) if _is_image(e)]


def _has_images(path):
    """Returns whether `path` directly holds at least one image file."""
    with os.scandir(path) as entries:
        return any(_is_image(e) and not e.name.startswith(".") for e in entries)


def _find_splits(root):
    """Returns {split name: folder} for the image folder `root`."""
    if not os.path.exists(root):
        raise DatasetError(
            f"data path {root} not found; pass an existing image folder {LAYOUT}"
        )
    if not os.path.isdir(root):
        raise DatasetError(
            f"data path {root} is not a directory; pass an image folder {LAYOUT}"
        )
    subdirs = _subdirs(root)
    if not subdirs:
        raise DatasetError(
            f"image folder {root} has no sub-folders; lay it out as {LAYOUT} "
            "(or ROOT/<class>/*.jpg for a single train split)"
        )
    if any(_has_images(os.path.join(root, d)) for d in subdirs):
        return {"train": root}  # ROOT/<class>/*.jpg: the folders are classes.
    splits = {d: os.path.join(root, d) for d in subdirs}
    if "train" not in splits:
        raise DatasetError(
            f"image folder {root} has splits {', '.join(splits)} but no 'train'; "
            "rename the training split folder to 'train'"
        )
    return splits


def _check_same_classes(root, split, classes, train_classes):
    """Raises a DatasetError if `split` has other class folders than train."""
    if classes == train_classes:
        return
    missing = sorted(set(train_classes) - set(classes))
    extra = sorted(set(classes) - set(train_classes))
    raise DatasetError(
        f"image folder {root}: split '{split}' does not have the class folders "
        f"of 'train' (missing {missing}, extra {extra}); every split needs the "
        "same class folders"
    )


class ImageFolderDataset(ImageDataset):
    """Images in ROOT/<split>/<class>/*, read in sorted class then file order.

    Labels index the sorted class folder names; ids are paths relative to ROOT
    ("train/cat/0001.jpg"); the name is "imagefolder:<absolute ROOT>".

    Args:
      root: the dataset folder; "~" and relative paths are resolved.
    """

    def __init__(self, root):
        if not root:
            raise DatasetError(f"empty data path; pass an image folder {LAYOUT}")
        self.root = os.path.abspath(os.path.expanduser(root))
        self.name = f"imagefolder:{self.root}"
        split_dirs = _find_splits(self.root)
        self.splits = tuple(split_dirs)
        self.train_split = "train"
        self.class_names = _subdirs(split_dirs["train"])
        if len(self.class_names) < 2:
            raise DatasetError(
                f"image folder {self.root} has {len(self.class_names)} class "
                "folder(s) in split 'train'; add at least 2 class folders "
                f"({LAYOUT})"
            )
        # split -> (ids relative to root, int64 labels), in reading order.
        self._files = {s: self._list_split(s, d) for s, d in split_dirs.items()}
        self._fingerprint = None

    def source_paths(self):
        """Returns the image folder."""
        return (self.root,)

    def _list_split(self, split, folder):
        """Returns (relative paths, labels) of the images of one split."""
        _check_same_classes(self.root, split, _subdirs(folder), self.class_names)
        ids, labels = [], []
        for label, class_name in enumerate(self.class_names):
            names = _image_names(os.path.join(folder, class_name))
            if not names:
                raise DatasetError(
                    f"image folder {self.root}: class '{class_name}' in split "
                    f"'{split}' has no images; add images or remove the folder"
                )
            prefix = os.path.relpath(os.path.join(folder, class_name), self.root)
            prefix = "" if prefix == "." else prefix.replace(os.sep, "/") + "/"
            ids.extend(prefix + n for n in names)
            labels.extend([label] * len(names))
        return ids, np.array(labels, dtype=np.int64)

    def _all_labels(self, split):
        return self._files[split][1]

    def _selection(self, split, max_per_class):
        """Returns (ids, labels) of `split` after `max_per_class`."""
        ids, labels = self._files[self._check_split(split)]
        keep = select_first_per_class(labels, max_per_class)
        return [ids[i] for i in keep], labels[keep]

    def path(self, example_id):
        """Returns the absolute file path of the example with id `example_id`."""
        return os.path.join(self.root, *example_id.split("/"))

    def as_dataset(self, split, *, max_per_class=None):
        """Returns the {"image", "label", "id"} tf.data.Dataset of `split`.

        Iterating it raises tf.errors.InvalidArgumentError on an undecodable
        file; use `as_numpy_iterator` to get a DatasetError naming the file.
        """
        ids, labels = self._selection(split, max_per_class)
        files = tf.data.Dataset.from_tensor_slices(
            {
                "path": [self.path(i) for i in ids],
                "label": labels,
                "id": ids,
            }
        )
        return files.map(
            _decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )

    def _read_error(self, split, max_per_class, position, error):
        """Returns a DatasetError naming the first unreadable file from
        `position` on (the failing element, since reading keeps order)."""
        ids, _ = self._selection(split, max_per_class)
        named = undecodable_file_error([self.path(i) for i in ids[position:]])
        return named or super()._read_error(split, max_per_class, position, error)

    def fingerprint(self):
        """Returns a hash of the name, classes and every file's path and
        content (base.file_digest: modification times do not count)."""
        if self._fingerprint is None:
            lines = []
            for split in self.splits:
                for example_id in self._files[split][0]:
                    digest = file_digest(self.path(example_id))
                    lines.append(f"{example_id}\t{digest}")
            self._fingerprint = hash_parts(
                self.name, self.class_names, self.splits, *lines
            )
        return self._fingerprint


def _decode(element):
    return {
        "image": decode_image_file(element["path"]),
        "label": element["label"],
        "id": element["id"],
    }
