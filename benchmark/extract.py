"""Feature extraction with an on-disk cache shared by every evaluator.

Preprocessing follows the linear-evaluation protocol: resize the shorter side
to the module's input size and center crop (crop_fraction 1.0). The cache key
covers everything that changes the features: module content hash, signature,
dataset fingerprint, split, example selection, preprocessing and code version.
Entries are written to a temporary file and renamed, so a killed run never
leaves a partial entry.
"""

import hashlib
import json
import os
import time

import numpy as np
import tensorflow as tf

from benchmark.features import FeatureSet
from benchmark.modules import ModuleError, check_features
from zoo import data as zoo_data
from zoo.provenance import code_version


def cache_key(module, dataset, split, max_per_class, crop_fraction):
    """Returns the hex key of the features of `module` on a dataset split."""
    parts = {
        "module": module.sha256,
        "signature": module.signature,
        "image_size": module.image_size,
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint(),
        "split": split,
        "max_per_class": max_per_class,
        "crop_fraction": crop_fraction,
        "code": code_version().split("+")[0],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _save_atomic(path, features):
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez(tmp, features=features.features, labels=features.labels, ids=features.ids)
    os.replace(tmp, path)


def extract_features(
    module,
    dataset,
    split,
    *,
    max_per_class=None,
    batch_size=128,
    crop_fraction=1.0,
    cache_dir=None,
    report=print,
):
    """Returns the FeatureSet of `module` on `dataset`'s `split`, from the cache
    when `cache_dir` holds it. Raises ModuleError for NaN or constant features."""
    path = None
    if cache_dir:
        key = cache_key(module, dataset, split, max_per_class, crop_fraction)
        path = os.path.join(cache_dir, f"{key}.npz")
        if os.path.isfile(path):
            with np.load(path) as cached:
                return FeatureSet(cached["features"], cached["labels"], cached["ids"])
    size = module.image_size
    total = dataset.num_examples(split, max_per_class=max_per_class)
    ds = (
        dataset.as_dataset(split, max_per_class=max_per_class)
        .map(
            lambda e: (
                zoo_data.eval_preprocess(e["image"], size, crop_fraction),
                e["label"],
                e["id"],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    chunks, labels, ids = [], [], []
    start = last = time.perf_counter()
    for images, batch_labels, batch_ids in ds:
        chunks.append(np.asarray(module(images), dtype=np.float32))
        labels.append(batch_labels.numpy())
        ids.append(batch_ids.numpy())
        done = sum(len(c) for c in chunks)
        if time.perf_counter() - last > 10 or done == total:
            last = time.perf_counter()
            rate = done / max(last - start, 1e-9)
            report(
                f"[features] {dataset.name}/{split}: {done}/{total} ({rate:.0f} img/s)"
            )
    if not chunks:
        raise ModuleError(f"{dataset.name}/{split} has no images to extract")
    features = np.concatenate(chunks)
    check_features(features, module.handle)
    if np.all(np.ptp(features, axis=0) == 0):
        raise ModuleError(
            f"{module.handle} returns the same features for every image of "
            f"{dataset.name}/{split}; check the module's input range and signature"
        )
    result = FeatureSet(
        features,
        np.concatenate(labels).astype(np.int64),
        np.concatenate(ids).astype(str),
    )
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        _save_atomic(path, result)
    return result
