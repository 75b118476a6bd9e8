"""Loads any image feature-vector module and discovers its input contract.

A handle is a local SavedModel directory or an http(s)/gs:// URL that
tensorflow_hub resolves (cached in TFHUB_CACHE_DIR). The contract (signature,
input size, value range, feature dimension) is read from the module's
`metadata.json` when it has one, from its signature otherwise, and can be
overridden by the caller.
"""

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from zoo.provenance import sha256_tree

FEATURE_KEYS = ("feature_vector", "default", "pre_logits", "final_avg_pool")


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
      fn: images -> features.
    """

    handle: str
    path: str
    sha256: str
    metadata: dict
    image_size: int
    signature: str
    feature_dim: int
    fn: object

    def __call__(self, images):
        return self.fn(images)

    def contract(self):
        """Returns the input contract as a JSON-serialisable dict."""
        return {
            "signature": self.signature,
            "image_size": self.image_size,
            "value_range": [0.0, 1.0],
            "feature_dim": self.feature_dim,
        }


def resolve_handle(handle):
    """Returns the local directory of `handle`, downloading URLs through
    tensorflow_hub's cache."""
    if handle.startswith(("http://", "https://", "gs://")):
        import tensorflow_hub as hub

        try:
            return hub.resolve(handle)
        except Exception as e:  # noqa: BLE001 - any fetch failure means the same
            raise ModuleError(
                f"cannot fetch {handle} ({type(e).__name__}); without network, "
                "pass a local module directory or set TFHUB_CACHE_DIR to a cache "
                "that holds it"
            ) from None
    path = os.path.abspath(os.path.expanduser(handle))
    if not os.path.exists(path):
        raise ModuleError(f"module {handle} not found; pass a SavedModel directory")
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ModuleError(
            f"{handle} is not a SavedModel (no saved_model.pb); pass the directory "
            "written by zoo-export or tf.saved_model.save"
        )
    return path


def _select_output(outputs, where):
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
    if callable(obj) and hasattr(obj, "__call__"):
        return "__call__", lambda x: _select_output(obj(x), "__call__")
    for name in ("feature_vector", "default", "serving_default"):
        if name in obj.signatures:
            return _feature_fn(obj, name, handle)
    raise ModuleError(
        f"{handle} has no usable signature (no __call__, feature_vector or "
        "serving_default); pass --signature"
    )


def _static_size(obj, signature):
    if signature in getattr(obj, "signatures", {}):
        spec = next(
            iter(obj.signatures[signature].structured_input_signature[1].values())
        )
        if spec.shape.rank == 4 and spec.shape[1] and spec.shape[1] == spec.shape[2]:
            return int(spec.shape[1])
    return None


def load_module(handle, image_size=None, signature=None):
    """Returns a LoadedModule for `handle`, checked by one forward pass.

    `image_size` and `signature` override what the module declares.
    """
    path = resolve_handle(handle)
    metadata = {}
    meta_path = os.path.join(path, "metadata.json")
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            metadata = json.load(f)
    try:
        obj = tf.saved_model.load(path)
    except Exception as e:  # noqa: BLE001 - report any load failure as one line
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModuleError(f"cannot load {handle} as a SavedModel: {message}") from None
    signature, fn = _feature_fn(obj, signature, handle)
    size = image_size or metadata.get("image_size") or _static_size(obj, signature)
    if not size:
        raise ModuleError(f"{handle} declares no input size; pass --image_size")
    probe = fn(tf.random.stateless_uniform([2, size, size, 3], seed=[1, 2]))
    check_features(probe, handle)
    return LoadedModule(
        handle=handle,
        path=path,
        sha256=sha256_tree(path),
        metadata=metadata,
        image_size=int(size),
        signature=signature,
        feature_dim=int(probe.shape[-1]),
        fn=fn,
    )


def check_features(features, handle):
    """Raises ModuleError unless `features` is a finite float [batch, d] array."""
    features = tf.convert_to_tensor(features)
    if features.shape.rank != 2:
        raise ModuleError(
            f"{handle} returns features of shape {features.shape}, not [batch, "
            "features]; pass --signature naming a pooled feature-vector output"
        )
    if not features.dtype.is_floating:
        raise ModuleError(f"{handle} returns {features.dtype.name} features, not float")
    if not np.all(np.isfinite(features.numpy())):
        raise ModuleError(f"{handle} returns NaN or infinite features")
