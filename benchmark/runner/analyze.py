"""The analysis engine: one streamed pass (or a few) over a dataset split,
feeding every registered analysis (benchmark/analyses) the layer outputs of
every module, without ever holding the split's features.

Layers of a module: its `endpoints` signature's outputs in network order
(the stem, then the blocks by number; zoo and imported authors' modules
expose every block), without the logits and without the endpoint that is the
feature vector, followed by `features` (the feature vector, which every
module has). A foreign module without endpoints has the one layer
`features`. Pooled analyses see each layer averaged over its spatial
positions ([b, d]); `raw` ones (sparsity) see the activations as they are.

Passes:
  1. the evaluation crop, in the split's order: every analysis;
  2. for analyses with `second_pass` (NC4 needs the class means first): the
     feature vector and the logits again;
  3. CKA's further passes (`passes` > 1, or `augment`): shuffled with seed
     `pass`, with the training augmentation (random crop and flip) when
     `augment` is set, fed to CKA alone.
Forward passes run `batch_size` images at a time; CKA regroups them into its
own equal minibatches.
"""

import re
import time

import numpy as np
import tensorflow as tf

from benchmark.analyses.base import FEATURES
from benchmark.analyses.neural_collapse import LOGITS
from benchmark.modules.loading import FEATURE_KEYS
from zoo.data import preprocessing

PROGRESS_SECONDS = 10.0
LOGIT_KEYS = ("logits", "final_layer", "outputs", "predictions")
_HEAD = re.compile(r"(^|/)(logits|final_layer|head|classifier|predictions)[^/]*/kernel")


class EngineError(ValueError):
    """Modules or data the analyses cannot run on; one line."""


def _order(name):
    lowered = name.lower()
    numbers = tuple(int(n) for n in re.findall(r"\d+", lowered))
    if (
        any(s in lowered for s in ("stem", "conv1", "initial", "input"))
        and not numbers[1:]
    ):
        rank = 0
    else:
        rank = 1
    return (rank, numbers, lowered)


def module_layers(module):
    """Returns the module's layer names in network order (module docstring)."""
    names = [
        n
        for n in module.endpoint_names()
        if n not in LOGIT_KEYS and n not in FEATURE_KEYS and n != FEATURES
    ]
    return sorted(names, key=_order) + [FEATURES]


def head_weights(module):
    """Returns (W [K, d], b [K] or None) of the module's classifier, or None:
    a variable named like `logits/kernel` or `final_layer/kernel` of shape
    [feature_dim, K]."""
    dim = module.feature_dim
    variables = list(getattr(module.obj, "variables", None) or [])
    by_name = {v.name: v for v in variables}
    for v in variables:
        if len(v.shape) == 2 and v.shape[0] == dim and _HEAD.search(v.name):
            bias = by_name.get(v.name.replace("kernel", "bias"))
            return (
                v.numpy().T.astype(np.float64),
                None if bias is None else bias.numpy().astype(np.float64),
            )
    return None


def _outputs(module, layers, images, raw):
    """Returns ({layer: raw array}, {layer: pooled array}) of one batch."""
    values = module.endpoint_outputs(images) if len(layers) > 1 else {}
    feature = next((values[k] for k in FEATURE_KEYS if k in values), None)
    values[FEATURES] = module.features(images) if feature is None else feature
    raw_out, pooled = {}, {}
    for name in layers:
        value = tf.cast(values[name], tf.float32)
        if raw:
            raw_out[name] = value.numpy()
        pooled[name] = (
            tf.reduce_mean(value, axis=[1, 2]) if value.shape.rank == 4 else value
        ).numpy()
    return raw_out, pooled


def _batches(dataset, split, size, *, max_per_class, batch_size, augment, seed):
    """Returns the tf.data batches (images in [0, 1], labels) of one pass."""
    data = dataset.as_dataset(split, max_per_class=max_per_class)
    if seed is not None:
        data = data.shuffle(4096, seed=seed, reshuffle_each_iteration=False)

    def prepare(example):
        if augment:
            key = tf.strings.to_hash_bucket_fast(example["id"], 2**31 - 1)
            image = preprocessing.train_preprocess(
                example["image"],
                size,
                seed=tf.stack([tf.cast(seed or 0, tf.int64), key]),
            )
        else:
            image = preprocessing.eval_preprocess(example["image"], size)
        return image, example["label"]

    return (
        data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def analyze(
    modules,
    dataset,
    split,
    analyses,
    *,
    max_per_class=None,
    batch_size=64,
    report=print,
):
    """Runs `analyses` (built analysis objects) over `modules` ({key: Module})
    on one split of `dataset`; returns ({analysis name: AnalysisResult},
    the number of examples)."""
    if not modules:
        raise EngineError("no module to analyse; pass --modules")
    sizes = {m.image_size for m in modules.values()}
    if len(sizes) > 1:
        listed = ", ".join(f"{k}: {m.image_size} px" for k, m in modules.items())
        raise EngineError(
            f"the modules take different input sizes ({listed}); pass --image_size "
            "so every module sees the same images"
        )
    size = sizes.pop()
    layers = {key: module_layers(m) for key, m in modules.items()}
    for analysis in analyses:
        analysis.start(layers)
    total = dataset.num_examples(split, max_per_class=max_per_class)
    raw = any(a.raw for a in analyses)
    state = {"done": 0, "last": time.monotonic(), "label": ""}

    def progress(count, final=False):
        state["done"] += count
        if final or time.monotonic() - state["last"] > PROGRESS_SECONDS:
            report(f"[analyze] {state['label']}: {state['done']}/{total} images")
            state["last"] = time.monotonic()

    def run_pass(label, consumers, *, augment=False, seed=None, second=False):
        state.update(done=0, label=label)
        for images, labels in _batches(
            dataset,
            split,
            size,
            max_per_class=max_per_class,
            batch_size=batch_size,
            augment=augment,
            seed=seed,
        ):
            labels = labels.numpy()
            raws, pooled = {}, {}
            for key, module in modules.items():
                if second:
                    pooled[key] = {FEATURES: module.features(images).numpy()}
                    if key in has_logits:
                        pooled[key][LOGITS] = module.logits(images).numpy()
                    continue
                raws[key], pooled[key] = _outputs(module, layers[key], images, raw)
            for analysis in consumers:
                if second:
                    analysis.second(pooled, labels)
                else:
                    analysis.update(raws if analysis.raw else pooled, labels)
            progress(len(labels))
        progress(0, final=True)
        for analysis in consumers:
            if hasattr(analysis, "end_pass"):
                analysis.end_pass()

    has_logits = {k for k, m in modules.items() if m.has_logits}
    first = [a for a in analyses if not (a.pairwise and a.augment)]
    run_pass(f"{split} pass 1", first)
    seconds = [a for a in analyses if a.second_pass]
    if seconds and has_logits:
        run_pass(f"{split} second pass (logits)", seconds, second=True)
    for analysis in analyses:
        if not analysis.pairwise:
            continue
        start = 0 if analysis.augment else 1
        for p in range(start, analysis.passes):
            run_pass(
                f"{split} {analysis.name} pass {p + 1}/{analysis.passes}",
                [analysis],
                augment=analysis.augment,
                seed=p + 1,
            )
    heads = {k: head_weights(m) if m.has_logits else None for k, m in modules.items()}
    return {a.name: a.finish(heads) for a in analyses}, total
