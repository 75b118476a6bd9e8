"""Exports a trained classifier as a TF2 Reusable SavedModel (TF-Hub image
conventions).

Interface of the exported module:
  - `module(images, training=False)`: float32 [batch, height, width, 3] in
    [0, 1] -> the feature vector [batch, features] (normalisation is inside);
  - signatures `feature_vector` ({"feature_vector"}), `logits` ({"logits"}: the
    objective's prediction scores) and `endpoints` (every named endpoint);
    `serving_default` is `feature_vector`;
  - `variables`, `trainable_variables` and `regularization_losses` so that
    hub.KerasLayer(trainable=True) can fine-tune it.
Next to `saved_model.pb` the directory holds `metadata.json` (machine
readable) and `README.md` (the model card).
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

from zoo.files import swap_in_folder
from zoo.provenance import code_version, sha256_tree

METADATA_NAME = "metadata.json"
EXPORT_SOURCES = ("zoo", "authors")
MODEL_CARD_NAME = "README.md"
IMAGE_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")
# The input side of each architecture's full-size (ImageNet) configs.
FULL_SIZE_IMAGE_SIDE = {"resnet50": 224, "inception_v3": 299}


class ExportError(ValueError):
    """An export that cannot be done; the message says why."""


def _module_root(model, objective, weight_decay):
    """Returns the trackable object that becomes the SavedModel's root."""
    backbone_vars = [
        v for v in model.trainable_variables if not v.path.startswith("logits")
    ]
    kernels = [v for v in backbone_vars if v.path.endswith("kernel")]
    root = tf.train.Checkpoint()
    root.model = model
    root.variables = list(model.variables)
    root.trainable_variables = backbone_vars

    # The network is traced twice, once per mode; every exported function
    # below calls one of these two graphs (a function call in the SavedModel),
    # instead of tracing the whole network again for each signature.
    @tf.function(input_signature=[IMAGE_SPEC])
    def inference(images):
        return model(images, training=False)

    @tf.function(input_signature=[IMAGE_SPEC])
    def training_mode(images):
        return model(images, training=True)

    @tf.function
    def call(images, training=False):
        return (training_mode if training else inference)(images)["pre_logits"]

    for training in (False, True):
        call.get_concrete_function(IMAGE_SPEC, training)
    root.__call__ = call

    @tf.function(input_signature=[])
    def weight_decay_loss():
        return (
            0.5
            * weight_decay
            * tf.add_n([tf.reduce_sum(tf.square(v)) for v in kernels])
        )

    root.regularization_losses = [weight_decay_loss] if weight_decay > 0 else []

    @tf.function(input_signature=[IMAGE_SPEC])
    def feature_vector(images):
        return {"feature_vector": inference(images)["pre_logits"]}

    @tf.function(input_signature=[IMAGE_SPEC])
    def logits(images):
        scores = objective.scores(inference(images)["logits"])
        return {"logits": tf.cast(scores, tf.float32)}

    @tf.function(input_signature=[IMAGE_SPEC])
    def endpoints(images):
        return {k: tf.cast(v, tf.float32) for k, v in inference(images).items()}

    @tf.function(input_signature=[IMAGE_SPEC])
    def feature_vector_training(images):
        return {"feature_vector": training_mode(images)["pre_logits"]}

    root.feature_vector_training = feature_vector_training
    return root, attach_signatures(root, feature_vector, logits, endpoints)


def attach_signatures(root, feature_vector, logits, endpoints):
    """Attaches the module interface's three image functions to `root` and
    returns its signatures (serving_default is feature_vector)."""
    root.feature_vector = feature_vector
    root.logits = logits
    root.endpoints = endpoints
    return {
        "serving_default": feature_vector.get_concrete_function(),
        "feature_vector": feature_vector.get_concrete_function(),
        "logits": logits.get_concrete_function(),
        "endpoints": endpoints.get_concrete_function(),
    }


def input_size_note(arch, image_size):
    """Returns the model card's sentence on the default input size: the size the
    module was trained at, and the full-size configs' side for `arch`."""
    note = (
        f"The default input size is {image_size}x{image_size}, the size this module "
        "was trained at (`image_size` in metadata.json). Other sizes work (the "
        "network is fully convolutional) but shift the features."
    )
    full = FULL_SIZE_IMAGE_SIDE.get(arch)
    if full and full != image_size:
        note += f" Full-size {arch} configs train and evaluate at {full}x{full}."
    return note


def model_card(metadata):
    """Returns the tfhub.dev-style markdown model card for `metadata`."""
    hp = ", ".join(f"{k}={v}" for k, v in sorted(metadata["objective_hparams"].items()))
    acc = metadata.get("holdout_top1")
    acc_text = f"{100 * acc:.1f}%" if isinstance(acc, float) else "not measured"
    size_note = input_size_note(metadata["arch"], metadata["image_size"])
    return f"""# Module {metadata["name"]}

<!-- asset-path: {metadata["name"]}.tar.gz -->
<!-- format: saved_model_2 -->
<!-- task: image-feature-vector -->
<!-- task: image-classification -->
<!-- fine-tunable: true -->
<!-- network-architecture: {metadata["arch"]} -->
<!-- dataset: {metadata["dataset"]} -->
<!-- license: apache-2.0 -->

{metadata["arch"]} (width x{metadata["width_multiplier"]}) trained with the
`{metadata["objective"]}` objective on `{metadata["dataset"]}`
({metadata["num_classes"]} classes).

## Usage
```python
import tensorflow_hub as hub
module = hub.load("PATH_OR_URL")
features = module(images)  # float32 [batch, {metadata["image_size"]}, \
{metadata["image_size"]}, 3] in [0, 1] -> [batch, {metadata["feature_dim"]}]
logits = module.signatures["logits"](images=images)["logits"]
```
Inputs are float32 RGB in [0, 1]; ImageNet mean/std normalisation happens
inside the module. The module fine-tunes through
`hub.KerasLayer(handle, trainable=True)` (tf_keras) and, in Keras 3, through
`keras.layers.TFSMLayer(handle, call_endpoint="feature_vector",
call_training_endpoint="feature_vector_training")`.

## Input size
{size_note}

## Objective
`{metadata["objective"]}` with {hp or "no hyperparameters"}.

## Accuracy
Holdout top-1: {acc_text}.

## Training recipe
SGD with Nesterov momentum {metadata["recipe"]["momentum"]}, global batch
{metadata["recipe"]["global_batch_size"]}, base learning rate
{metadata["recipe"]["base_learning_rate"]} per 256 images with
{metadata["recipe"]["warmup_epochs"]} warm-up epochs then x
{metadata["recipe"]["lr_decay_per_epoch"]} per epoch, weight decay
{metadata["recipe"]["weight_decay"]}, {metadata["recipe"]["epochs"]} epochs, seed
{metadata["seed"]}. Code version {metadata["code_version"]}.

## Licence
Apache 2.0.
"""


def export_hub_module(model, objective, info, out_dir, name=None, kaggle_owner=None):
    """Writes `model` as a Reusable SavedModel with metadata and model card to
    `out_dir` (replaced atomically) and returns (out_dir, sha256 of its tree).

    `info` is the `train_info.json` dict of the run that trained `model`.
    """
    config = info["config"]
    name = name or f"{config['arch']}_{config['objective']}_seed{config['seed']}"
    metadata = {
        "name": name,
        "source": "zoo",
        "format": "saved_model_2",
        "arch": config["arch"],
        "width_multiplier": config["width_multiplier"],
        "objective": config["objective"],
        "objective_hparams": info["objective_hparams"],
        "dataset": info["dataset"],
        "num_classes": info["num_classes"],
        "class_names": info["class_names"],
        "image_size": config["image_size"],
        "input_range": [0.0, 1.0],
        "value_range": [0.0, 1.0],
        "feature_dim": int(model.output["pre_logits"].shape[-1]),
        "holdout_top1": info.get("holdout", {}).get("top1"),
        "seed": config["seed"],
        "recipe": {
            k: config[k]
            for k in (
                "global_batch_size",
                "epochs",
                "base_learning_rate",
                "warmup_epochs",
                "lr_decay_per_epoch",
                "momentum",
                "weight_decay",
            )
        },
        "signatures": ["feature_vector", "logits", "endpoints"],
        "code_version": code_version(),
    }
    root, signatures = _module_root(model, objective, config["weight_decay"])
    return write_module(
        root, signatures, metadata, model_card(metadata), out_dir, kaggle_owner
    )


def write_module(root, signatures, metadata, card, out_dir, kaggle_owner=None):
    """Saves `root` with `signatures`, metadata.json, the model card `card`
    and the Kaggle Models metadata (export/kaggle.py; owner `kaggle_owner`)
    as `out_dir` and returns (out_dir, sha256 of its tree).

    `out_dir` may be new, an empty directory, or a module this project wrote
    before (`is_module_export`), which is replaced atomically: the new module
    is staged beside it and swapped in by renames. Anything else (a training
    run, a home directory, any folder of other files) is refused with a
    ValueError and left untouched: an export never deletes what it did not
    create.
    """
    out_dir = os.path.abspath(out_dir)
    check_export_target(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        tf.saved_model.save(root, staging, signatures=signatures)
        with open(os.path.join(staging, METADATA_NAME), "w") as f:
            json.dump(metadata, f, indent=1, sort_keys=True)
        with open(os.path.join(staging, MODEL_CARD_NAME), "w") as f:
            f.write(card)
        from export import kaggle

        for name, content in kaggle.metadata_files(
            metadata, card, kaggle_owner
        ).items():
            with open(os.path.join(staging, name), "w") as f:
                json.dump(content, f, indent=1)
        swap_in_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir, sha256_tree(out_dir)


def is_module_export(path):
    """Returns whether `path` is a module written by zoo-export or the
    authors' importer: saved_model.pb beside a metadata.json whose "source"
    is "zoo" or "authors" and "format" is "saved_model_2"."""
    try:
        with open(os.path.join(path, METADATA_NAME)) as f:
            metadata = json.load(f)
    except (OSError, ValueError):
        return False
    return (
        isinstance(metadata, dict)
        and metadata.get("source") in EXPORT_SOURCES
        and metadata.get("format") == "saved_model_2"
        and os.path.isfile(os.path.join(path, "saved_model.pb"))
    )


def check_export_target(out_dir):
    """Raises ValueError unless `out_dir` may be (re)written by an export."""
    if os.path.islink(out_dir) or (
        os.path.exists(out_dir) and not os.path.isdir(out_dir)
    ):
        raise ValueError(
            f"--out={out_dir} exists and is not a directory; pass a new folder"
        )
    if not os.path.isdir(out_dir) or not os.listdir(out_dir):
        return
    if not is_module_export(out_dir):
        raise ValueError(
            f"refusing to replace {out_dir}: it holds files that are not a module "
            "written by zoo-export; pass --out naming a new or empty folder"
        )
