"""The one extraction loop: a module's outputs on a dataset split, cached on disk.

Every evaluator that reads a module's outputs on images (features for the
linear probe, kNN, class separation and Chexpert; logits for calibration and
ImageNet-OOD) goes through `extract`, so one pipeline decodes, preprocesses,
batches and checks, and one cache serves them all.

Preprocessing follows the linear-evaluation protocol by default: resize the
shorter side to the module's input size (bilinear, antialiased) and take the
central square, i.e. `zoo.data.eval_preprocess` with crop_fraction 1.0, not
the 0.875 crop used to evaluate a classifier (calibration and ImageNet-OOD pass
0.875). Pixels are float32 in [0, 1]; the module maps them onto its own value
range and dtype. A `Transform` (e.g. a generated corruption) may alter the
preprocessed images before the forward pass; it is part of the cache key.

A cache entry is keyed by everything that changes the outputs: the module's
content hash and contract (signature, output, size, dtype, value range), the
output read (features or logits), the dataset fingerprint, the split, the
example selection (max_per_class; the selected ids are a deterministic
function of the fingerprint and it), the preprocessing, the transform and the
code version. Entries are written to a temporary file and renamed.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import time

import numpy as np
import tensorflow as tf

from benchmark.features.feature_set import FeatureSet
from benchmark.modules.loading import (
    ModuleError,
    check_feature_type,
    check_features,
    value_range_list,
)
from zoo import data as zoo_data
from zoo.data.base import DatasetError, clip_words, short_message
from zoo.files import TMP_MARK, atomic_path
from zoo.provenance import code_version, process_alive

PROTOCOL_CROP_FRACTION = 1.0
PROGRESS_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Transform:
    """A deterministic change of preprocessed images, applied before the module.

    Attributes:
      key: a JSON-able description, part of the cache key.
      fn: (float32 numpy images [b, s, s, 3] in [0, 1], index of the batch's
        first example) -> images of the same shape.
    """

    key: dict
    fn: object


def preprocessing(module, crop_fraction=PROTOCOL_CROP_FRACTION):
    """Returns the preprocessing of `module`'s inputs as a JSON-able dict."""
    return {
        "resize": "shorter_side",
        "interpolation": "bilinear_antialias",
        "crop": "center",
        "crop_fraction": crop_fraction,
        "image_size": module.image_size,
        "input_normalization": module.normalization,
        "value_range": value_range_list(module.value_range),
    }


def cache_key(
    module, dataset, split, *, output, max_per_class, crop_fraction, transform
):
    """Returns (hex key, the dict hashed) of `module`'s outputs on a split."""
    parts = {
        "module": module.sha256,
        "contract": module.contract(),
        "output": output,
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint(),
        "split": split,
        "max_per_class": max_per_class,
        "preprocessing": preprocessing(module, crop_fraction),
        "transform": transform.key if transform else None,
        "code": code_version().split("+")[0],
    }
    return entry_key(parts), parts


def entry_key(parts):
    """Returns the cache key of the dict `parts`: its module's hash prefix
    (so one module's entries are found by name) and a hash of all of it."""
    text = json.dumps(parts, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"{parts['module'][:16]}-{digest}"


class FeatureCache:
    """A directory of FeatureSets, one `<key>.npz` per (module, split, ...).

    Every entry stores its own key and a sha256 of its arrays; an entry that
    does not load, holds another key (a file copied under the wrong name) or
    fails its checksum (truncated, flipped bytes) is removed, reported and
    recomputed, never used. Temporary files of writers that died (kill -9)
    are removed when the cache is opened.

    Args:
      directory: where entries live (created on the first write).
      report: receives one-line notes about removed entries.
    """

    def __init__(self, directory, report=print):
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise ValueError(
                f"feature cache {directory} is a file, not a directory; pass "
                "--cache_dir naming a folder"
            )
        self.directory = directory
        self.report = report
        self.hits = 0  # entries served by `load`
        self._remove_orphans()

    def path(self, key):
        """Returns the file of entry `key`."""
        return os.path.join(self.directory, f"{key}.npz")

    def load(self, key):
        """Returns the FeatureSet stored under `key`, or None (absent, or
        invalid and removed)."""
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as cached:
                features = FeatureSet(
                    cached["features"], cached["labels"], cached["ids"]
                )
                stored_key = str(cached["entry_key"])
                stored_sum = str(cached["checksum"])
        except Exception as error:  # noqa: BLE001 - any unreadable entry is a miss
            return self._discard(path, f"unreadable ({type(error).__name__})")
        if stored_key != key:
            return self._discard(path, "holds another entry's key")
        if stored_sum != _checksum(features):
            return self._discard(path, "fails its checksum")
        self.hits += 1
        return features

    def _discard(self, path, why):
        """Removes an invalid entry; returns None (a cache miss). An entry the
        sandbox lent read-only stays for the parent to judge."""
        self.report(f"[features] cache entry {path} {why}; recomputing it")
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None

    def entries_of(self, module_sha256):
        """Returns the paths of the entries of the module with this hash."""
        if not os.path.isdir(self.directory):
            return []
        prefix = f"{module_sha256[:16]}-"
        return sorted(
            os.path.join(self.directory, name)
            for name in os.listdir(self.directory)
            if name.startswith(prefix)
            and name.endswith(".npz")
            and TMP_MARK not in name
        )

    def adopt(self, path, module_sha256):
        """Copies the entry file `path` (written by a sandboxed child) into
        this cache when it is a valid entry of the module with this hash:
        it loads without pickles, its key is the one its own parts hash to,
        those parts name this module and its checksum holds. Returns whether
        it was adopted; a child can add its own module's features, never
        overwrite or forge another module's."""
        name = os.path.basename(path)
        key = name[: -len(".npz")] if name.endswith(".npz") else None
        try:
            with np.load(path, allow_pickle=False) as stored:
                features = FeatureSet(
                    stored["features"], stored["labels"], stored["ids"]
                )
                parts = json.loads(str(stored["key"]))
                valid = (
                    key is not None
                    and str(stored["entry_key"]) == key
                    and parts.get("module") == module_sha256
                    and entry_key(parts) == key
                    and str(stored["checksum"]) == _checksum(features)
                )
        except Exception:  # noqa: BLE001 - anything unreadable is refused
            valid = False
        if valid:
            self.save(key, features, parts)
        return valid

    def save(self, key, features, parts):
        """Writes `features`, the key, its `parts` (for provenance) and the
        checksum atomically (zoo.files.atomic_path)."""
        with atomic_path(self.path(key), suffix=".npz") as tmp:
            np.savez(
                tmp,
                features=features.features,
                labels=features.labels,
                ids=features.ids,
                key=json.dumps(parts, sort_keys=True),
                entry_key=key,
                checksum=_checksum(features),
            )

    def _remove_orphans(self):
        """Removes temporary files whose writing process no longer runs."""
        if not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if TMP_MARK not in name:
                continue
            pid = name.rsplit(TMP_MARK, 1)[1].split(".")[0]
            if pid.isdigit() and not process_alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, name))


def _checksum(features):
    """Returns the sha256 of a FeatureSet's arrays (values, dtypes, shapes)."""
    digest = hashlib.sha256()
    for array in (features.features, features.labels, features.ids):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def extract(
    module,
    dataset,
    split,
    *,
    output="features",
    max_per_class=None,
    batch_size=128,
    crop_fraction=PROTOCOL_CROP_FRACTION,
    transform=None,
    cache=None,
    report=print,
):
    """Returns the FeatureSet of `module`'s `output` ("features" or "logits")
    on `dataset`'s `split`, from `cache` (a FeatureCache) when it holds it.

    A fresh extraction is checked (finite, not constant) and then stored.
    Raises ModuleError for unusable outputs and DatasetError for unreadable data.
    """
    key, parts = cache_key(
        module,
        dataset,
        split,
        output=output,
        max_per_class=max_per_class,
        crop_fraction=crop_fraction,
        transform=transform,
    )
    label = _label(dataset, split, output, transform)
    cached = cache.load(key) if cache else None
    if cached is not None:
        report(f"[features] {label}: {len(cached)} from cache")
        return cached
    result = extract_split(
        module,
        dataset,
        split,
        output=output,
        max_per_class=max_per_class,
        batch_size=batch_size,
        crop_fraction=crop_fraction,
        transform=transform,
        report=report,
    )
    if cache:
        cache.save(key, result, parts)
    return result


def _label(dataset, split, output, transform):
    """Returns the name of one extraction in progress lines."""
    label = f"{dataset.name}/{split}"
    if output != "features":
        label += f" {output}"
    if transform:
        label += " " + ",".join(f"{k}={v}" for k, v in sorted(transform.key.items()))
    return label


def preprocessed_batches(
    module,
    dataset,
    split,
    *,
    max_per_class,
    batch_size,
    crop_fraction=PROTOCOL_CROP_FRACTION,
):
    """Returns the tf.data pipeline of (images, labels, ids) batches fed to
    `module`: decoding and preprocessing run in parallel and are prefetched,
    so they overlap the forward pass."""
    size = module.image_size

    def prepare(example):
        image = zoo_data.eval_preprocess(example["image"], size, crop_fraction)
        return image, example["label"], example["id"]

    return (
        dataset.as_dataset(split, max_per_class=max_per_class)
        .map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def extract_split(
    module,
    dataset,
    split,
    *,
    output="features",
    max_per_class=None,
    batch_size=128,
    crop_fraction=PROTOCOL_CROP_FRACTION,
    transform=None,
    report=print,
):
    """Returns the FeatureSet of `module`'s `output` on one split (no cache),
    printing a progress line every PROGRESS_SECONDS and at the end."""
    total = dataset.num_examples(split, max_per_class=max_per_class)
    batches = preprocessed_batches(
        module,
        dataset,
        split,
        max_per_class=max_per_class,
        batch_size=batch_size,
        crop_fraction=crop_fraction,
    )
    fn = module.outputs(output)
    label = _label(dataset, split, output, transform)
    chunks, labels, ids = [], [], []
    done, start = 0, time.perf_counter()
    last = start
    for images, batch_labels, batch_ids in _read_batches(
        batches, dataset, split, max_per_class
    ):
        if transform is not None:
            images = tf.constant(transform.fn(images.numpy(), done), tf.float32)
        chunks.append(_forward(module, fn, images))
        labels.append(batch_labels.numpy())
        ids.append(batch_ids.numpy())
        done += len(chunks[-1])
        if time.perf_counter() - last > PROGRESS_SECONDS:
            last = time.perf_counter()
            report(_progress(label, done, total, last - start))
    if not chunks:
        raise DatasetError(f"{dataset.name}/{split} has no images to extract")
    report(_progress(label, done, total, time.perf_counter() - start))
    values = np.concatenate(chunks)
    check_features(
        values,
        module.handle,
        f"{dataset.name}/{split}",
        allow_constant=output != "features",
    )
    return FeatureSet(
        values,
        np.concatenate(labels).astype(np.int64),
        np.concatenate(ids).astype(str),
    )


def _read_batches(batches, dataset, split, max_per_class):
    """Yields the batches, turning a read failure into a DatasetError that names
    the failing file where the dataset can (undecodable images fail the run)."""
    position = 0
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as error:
            raise _read_error(dataset, split, max_per_class, position, error) from None
        position += int(batch[1].shape[0])
        yield batch


def _read_error(dataset, split, max_per_class, position, error):
    """Returns the DatasetError for a failure at or after example `position`."""
    # Image folders and CheXpert name the undecodable file.
    named = getattr(dataset, "_read_error", None)
    if named is not None:
        return named(split, max_per_class, position, error)
    return DatasetError(
        f"cannot read {dataset.name}/{split} after example {position}: "
        f"{short_message(error)}"
    )


def _forward(module, fn, images):
    """Returns fn(images) as float32 numpy, errors as ModuleError."""
    try:
        values = check_feature_type(fn(images), module.handle)
    except ModuleError:
        raise
    except (TypeError, ValueError, tf.errors.OpError) as e:
        raise ModuleError(
            f"{module.handle} fails on a batch of shape {images.shape.as_list()}: "
            f"{clip_words(' '.join(str(e).split()))}"
        ) from None
    return np.asarray(values, dtype=np.float32)


def _progress(label, done, total, seconds):
    """Returns one progress line: count, total and images per second."""
    rate = done / max(seconds, 1e-9)
    return f"[features] {label}: {done}/{total} ({rate:.0f} img/s)"
