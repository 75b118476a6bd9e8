"""TensorFlow Datasets sources ("tfds:NAME"), read from already prepared data.

Nothing is ever downloaded: the machines that run the benchmark may have no
internet, and a silent multi-GB download is never what a benchmark run wants.
Data must be prepared beforehand (`tfds build NAME`) and found in `data_dir`.
"""

import difflib
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo.data.base import (
    DatasetError,
    ImageDataset,
    ensure_rgb,
    hash_parts,
    select_first_per_class,
    short_message,
)

LABEL_BATCH = 8192


def _base_name(tfds_name):
    """Returns the bare dataset name of "name[/config][:version]"."""
    return tfds_name.split(":")[0].split("/")[0]


def _make_builder(tfds_name, data_dir):
    """Returns tfds.builder(tfds_name), turning its errors into DatasetErrors."""
    try:
        return tfds.builder(tfds_name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(_base_name(tfds_name), known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise DatasetError(
            f"unknown TFDS dataset '{tfds_name}'; {hint}"
            "tfds.list_builders() lists the known names"
        ) from None
    except (AssertionError, ValueError) as error:
        raise DatasetError(
            f"cannot open TFDS dataset '{tfds_name}': {short_message(error)}; "
            "check the config and version in the name (NAME/CONFIG:VERSION)"
        ) from None


def _not_prepared(tfds_name, builder):
    """Returns the DatasetError for TFDS data that has not been prepared."""
    if getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None):
        files = " and ".join(MANUAL_FILES.get(_base_name(tfds_name), ())) or "its files"
        return DatasetError(
            f"TFDS dataset '{tfds_name}' is not prepared in {builder.data_dir} "
            f"and needs a manual download: get {files} from "
            "https://image-net.org/download-images (free account), put them in "
            "a folder and pass --manual_dir=FOLDER (prepared once into --data_dir)"
        )
    return DatasetError(
        f"TFDS dataset '{tfds_name}' is not prepared (no data in "
        f"{builder.data_dir}) and is never downloaded here; run "
        f'"tfds build {tfds_name}" (or python -c "import tensorflow_datasets as '
        f"tfds; tfds.load('{tfds_name}')\") on a machine with internet, or pass "
        "--data_dir pointing to prepared TFDS data"
    )


# Files TFDS needs in the manual directory, for the datasets we know.
MANUAL_FILES = {
    "imagenet2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
}


def _is_prepared(builder):
    # An unprepared builder still has its info (from code) but no splits.
    return bool(builder.info.splits) and tf.io.gfile.exists(builder.data_dir)


def _prepare_from_manual_dir(tfds_name, builder, manual_dir):
    """Prepares `builder` from the files in `manual_dir`, or raises a
    DatasetError saying which files are missing and how to obtain them."""
    needed = MANUAL_FILES.get(_base_name(tfds_name), ())
    missing = [f for f in needed if not os.path.isfile(os.path.join(manual_dir, f))]
    if not os.path.isdir(manual_dir) or missing:
        what = ", ".join(missing or needed) or "the dataset's files"
        raise DatasetError(
            f"manual directory {manual_dir} lacks {what}; download them from "
            "https://image-net.org/download-images (free account, accept the "
            f"terms), put them in {manual_dir}, and rerun: TFDS prepares "
            f"'{tfds_name}' once into --data_dir"
        )
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
        )
    except Exception as error:  # noqa: BLE001 - preparation failures are data errors
        raise DatasetError(
            f"cannot prepare '{tfds_name}' from {manual_dir}: "
            f"{short_message(error)}; check the downloaded files are complete"
        ) from None


class TfdsDataset(ImageDataset):
    """A prepared TFDS image classification dataset, read in file order.

    The name is "tfds:<tfds_name>"; ids are the TFDS "tfds_id" of each record
    (file and index, unique across splits); grayscale images become 3-channel.

    Args:
      tfds_name: a name for tfds.builder, e.g. "cifar10" or "cifar10:3.0.2".
      data_dir: where the prepared data lives (TFDS's default when None).
      image_key: the image feature.
      label_key: the class label feature (a tfds.features.ClassLabel).
      manual_dir: for datasets TFDS cannot download (imagenet2012): the folder
        holding the manually downloaded files; unprepared data is then prepared
        from it once, into `data_dir`.
    """

    def __init__(
        self,
        tfds_name,
        data_dir=None,
        image_key="image",
        label_key="label",
        manual_dir=None,
    ):
        if not tfds_name:
            raise DatasetError("empty TFDS name; use tfds:NAME, e.g. tfds:cifar10")
        self.tfds_name = tfds_name
        self.name = f"tfds:{tfds_name}"
        self.image_key = image_key
        self.label_key = label_key
        self._builder = _make_builder(tfds_name, data_dir)
        if manual_dir is not None and not _is_prepared(self._builder):
            _prepare_from_manual_dir(tfds_name, self._builder, manual_dir)
        info = self._builder.info
        if not _is_prepared(self._builder):
            raise _not_prepared(tfds_name, self._builder)
        self.class_names = list(self._class_label().names)
        self._image_feature()  # Fails early when the image key is wrong.
        self.splits = tuple(sorted(info.splits.keys()))
        # None for evaluation-only datasets, which have no training split.
        self.train_split = "train" if "train" in self.splits else None
        self._labels = {}  # split -> labels, filled by a label-only pass.

    def _feature(self, key, what, argument):
        """Returns the feature `key`, or raises a DatasetError naming the others."""
        features = self._builder.info.features
        if key not in features:
            raise DatasetError(
                f"TFDS dataset '{self.tfds_name}' has no {what} feature '{key}' "
                f"(features: {', '.join(features.keys())}); pass {argument}=..."
            )
        return features[key]

    def _class_label(self):
        """Returns the ClassLabel feature of `label_key`."""
        feature = self._feature(self.label_key, "label", "label_key")
        if not isinstance(feature, tfds.features.ClassLabel):
            raise DatasetError(
                f"TFDS feature '{self.label_key}' of '{self.tfds_name}' is not a "
                "ClassLabel; pass label_key=<the class label feature>"
            )
        return feature

    def _image_feature(self):
        """Returns the image feature of `image_key`."""
        return self._feature(self.image_key, "image", "image_key")

    def _read(self, split):
        """Returns the raw records of `split` in file order, images undecoded."""
        try:
            return self._builder.as_dataset(
                split=split,
                shuffle_files=False,
                # Decoding waits until after `max_per_class` filtering.
                decoders={self.image_key: tfds.decode.SkipDecoding()},
                read_config=tfds.ReadConfig(add_tfds_id=True),
            )
        except (AssertionError, FileNotFoundError, tf.errors.NotFoundError):
            raise _not_prepared(self.tfds_name, self._builder) from None

    def _all_labels(self, split):
        if split not in self._labels:
            labels = self._read(split).map(lambda ex: ex[self.label_key])
            batches = list(labels.batch(LABEL_BATCH).as_numpy_iterator())
            self._labels[split] = (
                np.concatenate(batches).astype(np.int64)
                if batches
                else np.zeros([0], np.int64)
            )
        return self._labels[split]

    def source_paths(self):
        """Returns the prepared data's folder (every version of the builder)."""
        return (os.path.dirname(self._builder.data_dir),)

    def size_hint(self, max_per_class=None):
        """Returns the split sizes TFDS records, capped at max_per_class x
        classes (no pass over the data)."""
        cap = max_per_class * self.num_classes if max_per_class else None
        sizes = [split.num_examples for split in self._builder.info.splits.values()]
        return sum(min(n, cap) if cap else n for n in sizes)

    def num_examples(self, split, *, max_per_class=None):
        """Returns the size of `split`; with `max_per_class`, after one
        label-only pass over it."""
        if max_per_class is None:
            return self._builder.info.splits[self._check_split(split)].num_examples
        return super().num_examples(split, max_per_class=max_per_class)

    def as_dataset(self, split, *, max_per_class=None):
        """Returns the {"image", "label", "id"} tf.data.Dataset of `split`.

        With `max_per_class`, the labels are read first (one pass without
        image decoding) to choose the kept records.
        """
        records = self._read(self._check_split(split))
        if max_per_class is not None:
            keep = np.zeros(len(self._all_labels(split)), dtype=bool)
            keep[select_first_per_class(self._all_labels(split), max_per_class)] = True
            records = tf.data.Dataset.zip(
                records, tf.data.Dataset.from_tensor_slices(keep)
            )
            records = records.filter(lambda _, kept: kept).map(lambda ex, _: ex)
        image_feature = self._image_feature()

        def to_example(record):
            image = image_feature.decode_example(record[self.image_key])
            if image.dtype != tf.uint8:  # e.g. uint16 scans: rescale, don't wrap.
                image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
            return {
                "image": ensure_rgb(image),
                "label": tf.cast(record[self.label_key], tf.int64),
                "id": record["tfds_id"],
            }

        return records.map(
            to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )

    def _check_split(self, split):
        """Returns `split`, which may be a TFDS slice of a split ("train[:50046]",
        "train[10%:]"); raises a DatasetError if its split does not exist."""
        base = split.split("[")[0] if isinstance(split, str) else split
        super()._check_split(base)
        return split

    def fingerprint(self):
        """Returns a hash of the name, the TFDS full name (with version), the
        keys, the classes and the split sizes."""
        info = self._builder.info
        return hash_parts(
            self.name,
            info.full_name,
            self.image_key,
            self.label_key,
            self.class_names,
            *(f"{s}:{info.splits[s].num_examples}" for s in self.splits),
        )
