"""Imports the authors' released ResNet-50 SavedModels into this project's
module interface (export/hub_module.py), so the benchmark treats them like any
zoo module.

What the authors released (Kornblith et al. 2021; google-research
`loss_functions_transfer`): 9 losses x 8 seeds at
`gs://gresearch/loss_functions_transfer/savedmodels/{loss}/seed{0..7}`, TF1
graphs exported for serving with one signature, `serving_default`, taking
`image` (float32 [batch, 224, 224, 3]) and returning the per-block outputs,
`final_avg_pool` (the 2048-d penultimate features, [batch, 1, 1, 2048] in their
graph), `final_layer` (1001 logits) and `outputs` (the logits after the loss's
normalisation or scaling, what their evaluation takes the argmax of). Class 0
of the 1001 is an unused background class.

The imported module:
  - `module(images, training=False)`: float32 images in [0, 1] -> the
    `final_avg_pool` features [batch, 2048]; `training` is accepted and ignored,
    because the authors' graph is frozen in inference mode (batch norm always
    uses its moving statistics);
  - signatures `feature_vector`, `logits` (`outputs` without class 0: 1000
    ImageNet classes), `endpoints` (every output of theirs, unchanged, plus
    `logits`) and `serving_default` (= `feature_vector`);
  - `variables`, `trainable_variables`, `regularization_losses` (their weight
    decay, 8e-5 * sum ||v||^2 / 2 over non-batch-norm, non-bias variables);
  - metadata.json with "source": "authors", and a model card.

Input convention (`input_scale`): their `image` is what their
`resnet_preprocessing.preprocess_image(image, 224, 224, is_training=False)`
returns (their Colab feeds exactly that): `convert_image_dtype` to [0, 1],
central crop of 0.875, bicubic resize to 224, then `(x - mean) / std` with the
ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). So the default,
"imagenet_mean_std", applies that normalisation inside the module, and the
module takes [0, 1] images like every zoo module. "unit" passes [0, 1] through
(their `normalize=False` option) and "0_255" multiplies by 255; use them only
for SavedModels known to expect those.
"""

import tensorflow as tf

from export import normalization
from export.hub_module import attach_signatures, input_size_note, write_module
from export.normalization import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401 - re-export
from zoo.provenance import code_version

AUTHORS_SAVEDMODELS = "gs://gresearch/loss_functions_transfer/savedmodels"
AUTHORS_SEEDS = tuple(range(8))
# Published hyperparameters per loss (their load_model.LOSS_HYPERPARAMETERS),
# named as the zoo's objectives name them. Their cosine softmax normalises only
# the class weights, hence normalize_features=False.
AUTHORS_LOSSES = {
    "softmax": {},
    "label_smoothing": {"alpha": 0.1},
    "dropout": {"keep_probability": 0.7},
    "extra_final_layer_l2": {"l2": 8e-4},
    "logit_penalty": {"beta": 6e-4},
    "logit_normalization": {"temperature": 0.04},
    "cosine_softmax": {"temperature": 0.05, "normalize_features": False},
    "sigmoid": {},
    "squared_error": {"kappa": 9.0, "target": 60.0, "scale": 10.0},
}
# ImageNet top-1 per loss, mean of the 8 seeds (paper Table 1).
AUTHORS_TOP1 = {
    "softmax": 0.770,
    "label_smoothing": 0.776,
    "dropout": 0.775,
    "extra_final_layer_l2": 0.777,
    "logit_penalty": 0.777,
    "logit_normalization": 0.778,
    "cosine_softmax": 0.779,
    "sigmoid": 0.779,
    "squared_error": 0.772,
}
AUTHORS_IMAGE_SIZE = 224
AUTHORS_WEIGHT_DECAY = 8e-5
INPUT_SCALES = ("imagenet_mean_std", "unit", "0_255")
DEFAULT_INPUT_SCALE = "imagenet_mean_std"
REQUIRED_OUTPUTS = ("final_avg_pool", "outputs")
IMAGE_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")


class ImporterError(ValueError):
    """A SavedModel that cannot be imported; the message says why."""


def authors_handle(loss, seed):
    """Returns the gs:// folder of the authors' SavedModel for (loss, seed)."""
    return f"{AUTHORS_SAVEDMODELS}/{loss}/seed{seed}"


def to_authors_input(images, input_scale=DEFAULT_INPUT_SCALE):
    """Returns images in [0, 1] mapped to what the authors' `image` expects:
    (x - mean) / std, x, or 255 x for input_scale "imagenet_mean_std", "unit",
    "0_255"."""
    if input_scale in INPUT_SCALES:
        return normalization.apply(images, input_scale)
    raise ImporterError(
        f"unknown input_scale '{input_scale}'; use one of {', '.join(INPUT_SCALES)}"
    )


def _serving_function(source, src_dir):
    """Returns the `serving_default` function of `source` after checking it
    takes one `image` input and returns the outputs the importer needs."""
    if "serving_default" not in source.signatures:
        raise ImporterError(
            f"{src_dir} has no serving_default signature (it has "
            f"{sorted(source.signatures) or 'none'}); is it an authors' SavedModel?"
        )
    fn = source.signatures["serving_default"]
    inputs = sorted(fn.structured_input_signature[1])
    if inputs != ["image"]:
        raise ImporterError(
            f"{src_dir}: serving_default takes {inputs}, not one input 'image'"
        )
    missing = [k for k in REQUIRED_OUTPUTS if k not in fn.structured_outputs]
    if missing:
        raise ImporterError(
            f"{src_dir}: serving_default lacks {', '.join(missing)} (it returns "
            f"{', '.join(sorted(fn.structured_outputs))})"
        )
    return fn


def _pooled(features):
    """Returns [batch, channels] from the authors' [batch, 1, 1, channels]
    (their 7x7 VALID average pool) or an already flat feature tensor."""
    if features.shape.rank == 4:
        return tf.reduce_mean(features, axis=[1, 2])
    return features


def _decay_variables(variables):
    """Returns the variables their weight decay covers: not batch norm, not
    biases (their load_model.build_model_and_compute_loss)."""
    return [
        v
        for v in variables
        if "batch_normalization" not in v.name and "bias" not in v.name
    ]


def _module_root(source, fn, input_scale):
    """Returns (root, signatures) wrapping the authors' `fn` in the module
    interface."""
    root = tf.train.Checkpoint()
    root.source = source
    root.variables = list(fn.variables)
    root.trainable_variables = list(fn.trainable_variables)
    decayed = _decay_variables(root.trainable_variables)

    def run(images):
        images = tf.convert_to_tensor(images, tf.float32)
        return fn(image=to_authors_input(images, input_scale))

    @tf.function
    def call(images, training=False):
        del training  # their graph is frozen in inference mode
        return _pooled(run(images)["final_avg_pool"])

    for training in (False, True):
        call.get_concrete_function(IMAGE_SPEC, training)
    root.__call__ = call

    @tf.function(input_signature=[])
    def weight_decay_loss():
        return AUTHORS_WEIGHT_DECAY * tf.add_n([tf.nn.l2_loss(v) for v in decayed])

    root.regularization_losses = [weight_decay_loss] if decayed else []

    @tf.function(input_signature=[IMAGE_SPEC])
    def feature_vector(images):
        return {"feature_vector": _pooled(run(images)["final_avg_pool"])}

    @tf.function(input_signature=[IMAGE_SPEC])
    def logits(images):
        return {"logits": run(images)["outputs"][:, 1:]}

    @tf.function(input_signature=[IMAGE_SPEC])
    def endpoints(images):
        outputs = dict(run(images))
        outputs["logits"] = outputs["outputs"][:, 1:]
        return outputs

    return root, attach_signatures(root, feature_vector, logits, endpoints)


def authors_model_card(metadata):
    """Returns the markdown model card of an imported authors' module."""
    hp = ", ".join(f"{k}={v}" for k, v in sorted(metadata["objective_hparams"].items()))
    acc = metadata.get("holdout_top1")
    acc_text = (
        f"ImageNet top-1 {100 * acc:.1f}% (paper Table 1, mean of 8 seeds)"
        if isinstance(acc, float)
        else "not measured"
    )
    return f"""# Module {metadata["name"]}

<!-- format: saved_model_2 -->
<!-- task: image-feature-vector -->
<!-- task: image-classification -->
<!-- fine-tunable: true -->
<!-- network-architecture: resnet50 -->
<!-- dataset: imagenet2012 -->
<!-- license: apache-2.0 -->

The authors' ResNet-50 (Kornblith, Chen, Lee, Norouzi, "Why Do Better Loss
Functions Lead to Less Transferable Features?", NeurIPS 2021), `{metadata["objective"]}`
objective, seed {metadata["seed"]}, imported from `{metadata["source_handle"]}`
by export/importer.py into this project's module interface.

## Usage
```python
import tensorflow_hub as hub
module = hub.load("PATH")
features = module(images)  # float32 [batch, 224, 224, 3] in [0, 1] -> [batch, \
{metadata["feature_dim"]}]
logits = module.signatures["logits"](images=images)["logits"]  # 1000 classes
```
Inputs are float32 RGB in [0, 1], centrally cropped (0.875) and resized to
224x224 as in the authors' preprocessing; the module applies
`{metadata["input_scale"]}` scaling before their graph. Their graph is frozen
in inference mode: `training=True` does not update batch-norm statistics.

## Input size
{input_size_note("resnet50", metadata["image_size"])}

## Objective
`{metadata["objective"]}` with {hp or "no hyperparameters"}.

## Accuracy
{acc_text}.

## Training recipe
The paper's: SGD with Nesterov momentum 0.9, global batch 4096, 10 warm-up
epochs to learning rate 1.6 then x 0.975 per epoch, weight decay 8e-5, EMA of
weights (decay 0.9999) evaluated and released, early-stopped on a held-out part
of the ImageNet training set.

## Licence
Apache 2.0 (the authors' release).
"""


def _metadata(loss, seed, src_dir, input_scale, feature_dim):
    return {
        "name": f"authors_resnet50_{loss}_seed{seed}",
        "source": "authors",
        "source_handle": str(src_dir),
        "format": "saved_model_2",
        "arch": "resnet50",
        "width_multiplier": 1.0,
        "objective": loss,
        "objective_hparams": AUTHORS_LOSSES.get(loss, {}),
        "dataset": "imagenet2012",
        "num_classes": 1000,
        "image_size": AUTHORS_IMAGE_SIZE,
        "input_range": [0.0, 1.0],
        "value_range": [0.0, 1.0],
        "input_scale": input_scale,
        "feature_dim": feature_dim,
        "holdout_top1": AUTHORS_TOP1.get(loss),
        "seed": seed,
        "signatures": ["feature_vector", "logits", "endpoints"],
        "code_version": code_version(),
    }


def _load_source(src_dir):
    try:
        return tf.saved_model.load(str(src_dir))
    except Exception as e:  # noqa: BLE001 - any load failure is reported as one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ImporterError(f"cannot load {src_dir} as a SavedModel: {first}") from None


def import_authors_module(
    src_dir, out_dir, loss, seed, input_scale=DEFAULT_INPUT_SCALE, image_size=None
):
    """Writes the authors' SavedModel in `src_dir` (a local folder or gs:// URL)
    as a module of this project's interface to `out_dir` (replaced atomically)
    and returns (out_dir, sha256 of its tree).

    `image_size` is the side of the probe batch that checks the result
    (default 224, their input size).
    """
    to_authors_input(tf.zeros([1, 1, 1, 3]), input_scale)  # validates input_scale
    source = _load_source(src_dir)
    fn = _serving_function(source, src_dir)
    root, signatures = _module_root(source, fn, input_scale)
    side = image_size or AUTHORS_IMAGE_SIZE
    probe = root.__call__(tf.zeros([1, side, side, 3]), False)
    if probe.shape.rank != 2:
        raise ImporterError(f"{src_dir}: final_avg_pool has shape {probe.shape}")
    metadata = _metadata(loss, seed, src_dir, input_scale, int(probe.shape[-1]))
    return write_module(
        root, signatures, metadata, authors_model_card(metadata), out_dir
    )
