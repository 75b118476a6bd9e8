"""Loads any image feature-vector module and discovers its input contract.

A handle is one of
  * an http(s):// or gs:// URL, resolved by tensorflow_hub (TFHUB_CACHE_DIR);
  * a catalog name or a local .tar.gz archive, resolved by `export.catalog`
    (which unpacks archives safely) when that package is installed;
  * a local SavedModel directory.
Before anything from the module runs, its graph is scanned for file-system,
network and Python ops (`benchmark.safety`); a module holding one is refused.
The contract (signature, input size, value range, feature dimension) comes
from the module's `metadata.json` when it has one, from its signature
otherwise, and each part can be overridden by the caller. One forward pass on
a probe batch checks the output before any dataset is read.
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from benchmark import safety
from zoo.provenance import sha256_tree

FEATURE_KEYS = ("feature_vector", "default", "pre_logits", "final_avg_pool")
URL_PREFIXES = ("http://", "https://", "gs://")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
# TF-Hub's image convention, and what zoo-export writes.
DEFAULT_VALUE_RANGE = (0.0, 1.0)
PROBE_BATCH = 4


class ModuleError(ValueError):
    """A module that cannot be benchmarked; the message says why and the fix."""


@dataclasses.dataclass
class LoadedModule:
    """A loaded module and its input contract.

    Args:
      handle: what the user passed.
      path: the local SavedModel directory.
      sha256: content hash of that directory.
      metadata: the module's metadata.json (empty if it has none).
      image_size: the side images are resized and cropped to.
      signature: the signature used, or "__call__".
      feature_dim: length of the feature vector.
      value_range: (low, high) the module expects pixels in; images in [0, 1]
        are mapped linearly onto it before the call.
      fn: images in [0, 1] -> features.
    """

    handle: str
    path: str
    sha256: str
    metadata: dict
    image_size: int
    signature: str
    feature_dim: int
    value_range: tuple
    fn: object

    def __call__(self, images):
        return self.fn(images)

    def contract(self):
        """Returns the input contract as a JSON-serialisable dict."""
        return {
            "signature": self.signature,
            "image_size": self.image_size,
            "value_range": [float(v) for v in self.value_range],
            "feature_dim": self.feature_dim,
        }


def resolve_handle(handle):
    """Returns the local SavedModel directory of `handle` after the op-safety
    scan (see module docstring); raises ModuleError if there is none or the
    module holds a refused op.

    Order: URL, then `export.catalog.resolve_catalog_handle` (catalog names
    and local archives; skipped when export.catalog is not installed), then a
    local directory. Nothing from the module has run when this returns.
    """
    path = _local_directory(handle)
    check_module_safety(path, handle)
    return path


def _local_directory(handle):
    """Returns the local directory `handle` names, fetched or unpacked."""
    if not isinstance(handle, str) or not handle:
        raise ModuleError("empty module handle; pass --module=PATH_OR_URL")
    if handle.startswith(URL_PREFIXES):
        return _fetch(handle)
    resolved = _resolve_in_catalog(handle)
    if resolved:
        return os.fspath(resolved)
    path = os.path.abspath(os.path.expanduser(handle))
    if handle.endswith(ARCHIVE_SUFFIXES) and os.path.isfile(path):
        raise ModuleError(
            f"{handle} is an archive and export.catalog, which unpacks archives "
            "safely, is not installed; unpack it (tar -xzf) and pass the directory"
        )
    if not os.path.exists(path):
        raise ModuleError(
            f"module {handle} not found; pass a SavedModel directory, a .tar.gz "
            "archive, an http(s)/gs:// URL or a catalog name"
        )
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ModuleError(
            f"{handle} is not a SavedModel (no saved_model.pb); pass the directory "
            "written by zoo-export or tf.saved_model.save"
        )
    return path


def _fetch(url):
    """Returns the local directory of a module URL, via tensorflow_hub's cache."""
    import tensorflow_hub as hub

    try:
        return hub.resolve(url)
    except Exception as e:  # noqa: BLE001 - any fetch failure means the same
        raise ModuleError(
            f"cannot fetch {url} ({type(e).__name__}); without network, "
            "pass a local module directory or set TFHUB_CACHE_DIR to a cache "
            "that holds it"
        ) from None


def _resolve_in_catalog(handle):
    """Returns export.catalog's directory for `handle`, or None (not a catalog
    name or archive, or export.catalog not installed)."""
    try:
        from export.catalog import resolve_catalog_handle
    except ModuleNotFoundError as e:
        if e.name in ("export", "export.catalog"):
            return None
        raise
    return resolve_catalog_handle(handle)


def check_module_safety(path, handle):
    """Raises ModuleError if the SavedModel in `path` holds a refused op
    (`benchmark.safety.DENIED_OPS`); nothing from the module runs."""
    try:
        findings = safety.unsafe_ops(path)
    except (OSError, ValueError) as e:
        raise ModuleError(f"cannot read {handle} as a SavedModel: {e}") from None
    if findings:
        raise ModuleError(
            f"refusing {handle}: it contains {safety.summarise(findings)}; "
            "benchmark modules must be pure functions of their images "
            "(docs/protocols.md, op safety)"
        )


def parse_value_range(value):
    """Returns (low, high) floats from "low,high" or a pair; None stays None."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        low, high = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ModuleError(
            f"value range must be two numbers 'low,high' (e.g. 0,1 or 0,255 or "
            f"-1,1), got {value!r}"
        ) from None
    if not low < high:
        raise ModuleError(f"value range needs low < high, got {low},{high}")
    return low, high


def _select_output(outputs, where):
    """Returns the feature vector among a signature's outputs."""
    if isinstance(outputs, dict):
        for key in FEATURE_KEYS:
            if key in outputs:
                return outputs[key]
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        raise ModuleError(
            f"{where} returns {sorted(outputs)}; none is a feature vector "
            f"({', '.join(FEATURE_KEYS)}); pass --signature naming one that is"
        )
    return outputs


def _feature_fn(obj, signature, handle):
    """Returns (signature name, images -> features) of a loaded SavedModel."""
    if signature and signature != "__call__":
        if signature not in obj.signatures:
            raise ModuleError(
                f"{handle} has no signature '{signature}'; it has "
                f"{sorted(obj.signatures) or 'none'}"
            )
        fn = obj.signatures[signature]
        inputs = list(fn.structured_input_signature[1])
        if len(inputs) != 1:
            raise ModuleError(
                f"{handle}: signature '{signature}' takes {len(inputs)} inputs "
                f"({', '.join(inputs) or 'none'}), not one image batch; pass "
                "--signature naming a single-input image signature"
            )
        (arg,) = inputs
        return signature, lambda x: _select_output(fn(**{arg: x}), signature)
    if callable(obj):
        return "__call__", lambda x: _select_output(obj(x), "__call__")
    for name in ("feature_vector", "default", "serving_default"):
        if name in obj.signatures:
            return _feature_fn(obj, name, handle)
    raise ModuleError(
        f"{handle} has no usable signature (no __call__, feature_vector, default "
        "or serving_default); pass --signature naming an image signature"
    )


def _static_size(obj, signature):
    """Returns the square input size a signature declares, or None."""
    if signature in getattr(obj, "signatures", {}):
        spec = next(
            iter(obj.signatures[signature].structured_input_signature[1].values())
        )
        if spec.shape.rank == 4 and spec.shape[1] and spec.shape[1] == spec.shape[2]:
            return int(spec.shape[1])
    return None


def _rescaled(fn, value_range):
    """Returns fn applied to images mapped from [0, 1] onto value_range."""
    low, high = value_range
    if (low, high) == DEFAULT_VALUE_RANGE:
        return fn
    return lambda images: fn(low + (high - low) * images)


def load_module(handle, image_size=None, signature=None, value_range=None):
    """Returns a LoadedModule for `handle`, checked by one forward pass.

    `image_size`, `signature` and `value_range` ((low, high) or "low,high")
    override what the module declares. The op-safety scan (in
    `resolve_handle`) runs before the SavedModel is loaded.
    """
    path = resolve_handle(handle)
    metadata = _read_metadata(path, handle)
    try:
        obj = tf.saved_model.load(path)
    except Exception as e:  # noqa: BLE001 - report any load failure as one line
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModuleError(f"cannot load {handle} as a SavedModel: {message}") from None
    signature, fn = _feature_fn(obj, signature, handle)
    size = image_size or metadata.get("image_size") or _static_size(obj, signature)
    if not size:
        raise ModuleError(f"{handle} declares no input size; pass --image_size")
    value_range = parse_value_range(
        value_range or metadata.get("value_range") or DEFAULT_VALUE_RANGE
    )
    fn = _rescaled(fn, value_range)
    probe = _probe(fn, int(size), handle, value_range)
    return LoadedModule(
        handle=handle,
        path=path,
        sha256=sha256_tree(path),
        metadata=metadata,
        image_size=int(size),
        signature=signature,
        feature_dim=int(probe.shape[-1]),
        value_range=value_range,
        fn=fn,
    )


def _read_metadata(path, handle):
    """Returns the module's metadata.json as a dict ({} if it has none)."""
    meta_path = os.path.join(path, "metadata.json")
    if not os.path.isfile(meta_path):
        return {}
    try:
        with open(meta_path) as f:
            metadata = json.load(f)
    except json.JSONDecodeError as e:
        raise ModuleError(f"{handle}: metadata.json is not valid JSON ({e})") from None
    return metadata if isinstance(metadata, dict) else {}


def _probe(fn, size, handle, value_range):
    """Returns the features of PROBE_BATCH random images, after checking them."""
    images = tf.random.stateless_uniform([PROBE_BATCH, size, size, 3], seed=[1, 2])
    try:
        features = fn(images)
    except (TypeError, ValueError, tf.errors.OpError) as e:
        message = " ".join(str(e).split())[:200]
        raise ModuleError(
            f"{handle} fails on a float32 [{PROBE_BATCH}, {size}, {size}, 3] batch "
            f"in {list(value_range)}: {message}; check --image_size, --signature "
            "and --value_range"
        ) from None
    return check_features(features, handle, f"a probe batch of {PROBE_BATCH} images")


def check_feature_type(features, handle):
    """Returns `features` as a tensor; raises ModuleError unless it is a float
    [batch, d] tensor."""
    features = tf.convert_to_tensor(features)
    if features.shape.rank != 2:
        raise ModuleError(
            f"{handle} returns features of shape {features.shape.as_list()}, not "
            "[batch, features]; pass --signature naming a pooled feature-vector "
            "output"
        )
    if not features.dtype.is_floating:
        raise ModuleError(
            f"{handle} returns {features.dtype.name} features, not float; pass "
            "--signature naming a float feature-vector output"
        )
    return features


def check_features(features, handle, where="a batch"):
    """Returns `features` as a numpy array after checking it is usable.

    Raises ModuleError unless it is a float [batch, d] array, finite, and (for
    2 or more images) not the same vector for every image.
    """
    values = np.asarray(check_feature_type(features, handle))
    if not np.all(np.isfinite(values)):
        raise ModuleError(f"{handle} returns NaN or infinite features on {where}")
    if len(values) > 1 and np.all(values == values[:1]):
        raise ModuleError(
            f"{handle} returns the same features for every image of {where} "
            "(constant features); check --value_range and --signature"
        )
    return values
