"""ImageNet distribution shift: top-1 of the module's own classifier on
ImageNet-V2, -A, -R, -Sketch and clean validation, and ImageNet-C's mCE.

Protocol (Kornblith et al. 2021, REFERENCE.md): the module's `logits`
signature scores each image (resize the shorter side to size / 0.875, central
crop); ImageNet-A and -R take the argmax over their 200 classes only. The
logits must have 1000 entries, or 1001 with the unused background class 0
(the authors' released models), which is dropped.

mCE (Hendrycks & Dietterich 2019): E_{c,s} is the top-1 error on corruption c
at severity s; CE_c = mean_s E_{c,s} / AlexNet's mean error on c;
mCE = mean_c CE_c over the 15 corruptions. ImageNet-C comes from TFDS
(imagenet2012_corrupted, "tfds") or is generated in memory from the clean
validation images at the module's resolution by benchmark.corruptions
("generated"; our implementations, so AlexNet's errors are only an
approximate reference there; docs/evaluations.md).

Any labelled ImageDataset can stand in for ImageNet (pass it as `data`): its
test split is the clean set and the generated corruptions are applied to it;
the logits must then have one entry per class of the dataset, and without
AlexNet errors for it the unnormalised mean corruption error is reported.
"""

import numpy as np
import tensorflow as tf

from benchmark import corruptions, ood_data
from benchmark.evaluators.module_base import (
    MODULE_EVALUATORS,
    ModuleEvaluator,
    ModuleMeasurement,
    load_saved_module,
)
from benchmark.modules import ModuleError
from zoo import data as zoo_data

ALL_SETS = (*ood_data.OOD_SETS, "imagenet_c")
SOURCES = ("tfds", "generated")


@MODULE_EVALUATORS.register("imagenet_ood")
class ImageNetOOD(ModuleEvaluator):
    """Top-1 on the ImageNet shift sets and mCE on ImageNet-C.

    Args:
      sets: which of imagenet2012, imagenet_v2, imagenet_a, imagenet_r,
        imagenet_sketch and imagenet_c to measure.
      corruptions: the ImageNet-C corruptions (mCE averages over them).
      severities: the severities averaged per corruption.
      imagenet_c_source: "tfds" (prepared imagenet2012_corrupted) or
        "generated" (benchmark.corruptions on the clean images).
      max_examples: use at most this many images per set (None: all).
      batch_size: images per forward pass.
      crop_fraction: central crop fraction of full-size images.
      seed: seed of the generated corruptions.
      image_size: override of the module's input size.
    """

    name = "imagenet_ood"

    def __init__(
        self,
        *,
        sets=ALL_SETS,
        corruptions=corruptions.CORRUPTIONS,
        severities=corruptions.SEVERITIES,
        imagenet_c_source="tfds",
        max_examples=None,
        batch_size=128,
        crop_fraction=0.875,
        seed=0,
        image_size=None,
    ):
        unknown = sorted(set(sets) - set(ALL_SETS))
        if unknown:
            raise ValueError(
                f"unknown ImageNet-OOD set(s) {', '.join(unknown)}; choose from "
                f"{', '.join(ALL_SETS)}"
            )
        bad = sorted(set(corruptions) - set(ood_data.ALEXNET_ERRORS))
        if bad:
            raise ValueError(f"unknown corruption(s) {', '.join(bad)}")
        if imagenet_c_source not in SOURCES:
            raise ValueError(
                f"imagenet_c_source must be one of {', '.join(SOURCES)}, got "
                f"{imagenet_c_source!r}"
            )
        self.sets = tuple(sets)
        self.corruptions = tuple(corruptions)
        self.severities = tuple(int(s) for s in severities)
        self.imagenet_c_source = imagenet_c_source
        self.max_examples = max_examples
        self.batch_size = batch_size
        self.crop_fraction = crop_fraction
        self.seed = seed
        self.image_size = image_size

    def run(self, module, data, *, strategy=None, report=print):
        """Yields top-1 per set ("top1") and ImageNet-C's "mce" and per
        corruption "ce_<name>" / "error_<name>".

        Args:
          module: a module handle, LoadedModule or SavedModule with a `logits`
            signature.
          data: the TFDS data folder (str or None for TFDS's default), or a
            zoo.data.ImageDataset standing in for ImageNet (module docstring).
        """
        del strategy  # Inference only.
        saved = load_saved_module(module, self.image_size)
        size = saved.require_image_size()
        logits_fn = saved.logits_fn()
        if isinstance(data, zoo_data.ImageDataset):
            yield from self._run_labelled(saved, logits_fn, size, data, report)
            return
        data_dir = data
        classes = _ImageNetClasses(saved.handle)
        for name in self.sets:
            if name == "imagenet_c":
                continue
            ood_set = ood_data.OOD_SETS[name]
            examples = ood_data.load_examples(ood_set, data_dir, self.max_examples)
            subset = ood_data.class_subset(ood_set.subset) if ood_set.subset else None
            correct, n = self._score(
                logits_fn,
                self._batches(examples, size, ood_set.crop_fraction),
                classes,
                subset,
            )
            report(
                f"[imagenet_ood] {ood_set.name}: top1 {correct / n:.4f} ({n} images)"
            )
            yield ModuleMeasurement(
                "top1",
                correct / n,
                dataset=ood_set.name,
                split=ood_set.split,
                test_size=n,
            )
        if "imagenet_c" not in self.sets:
            return
        if self.imagenet_c_source == "tfds":
            errors, n = self._tfds_corruption_errors(logits_fn, size, classes, data_dir)
            name, split = "tfds:imagenet2012_corrupted", "validation"
        else:
            clean = ood_data.OOD_SETS["imagenet2012"]
            examples = ood_data.load_examples(clean, data_dir, self.max_examples)
            errors, n = self._generated_errors(
                logits_fn, examples, size, clean.crop_fraction, classes, report
            )
            name, split = f"generated-c:{clean.name}", clean.split
        yield from self._corruption_measurements(errors, name, split, n, True)

    def _run_labelled(self, saved, logits_fn, size, data, report):
        """Yields clean top-1 and generated-corruption errors on `data`'s test
        split, for a module whose logits are `data`'s classes."""
        split = data.test_split
        examples = data.as_dataset(split)
        if self.max_examples:
            examples = examples.take(self.max_examples)
        classes = _DatasetClasses(saved.handle, data)
        correct, n = self._score(
            logits_fn, self._batches(examples, size, self.crop_fraction), classes, None
        )
        report(f"[imagenet_ood] {data.name}/{split}: top1 {correct / n:.4f}")
        yield ModuleMeasurement(
            "top1", correct / n, dataset=data.name, split=split, test_size=n
        )
        if "imagenet_c" in self.sets:
            errors, n = self._generated_errors(
                logits_fn, examples, size, self.crop_fraction, classes, report
            )
            yield from self._corruption_measurements(
                errors, f"generated-c:{data.name}", split, n, False
            )

    def _batches(self, examples, size, crop_fraction):
        """Returns batches of (float32 images, int64 labels)."""
        return (
            examples.map(
                lambda e: (
                    zoo_data.eval_preprocess(e["image"], size, crop_fraction),
                    e["label"],
                ),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            .batch(self.batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )

    def _score(self, logits_fn, batches, classes, subset):
        """Returns (number correct, number of images) over `batches`."""
        correct = total = 0
        for images, labels in batches:
            logits = classes.check(logits_fn(images).numpy())
            correct += int(np.sum(top1_predictions(logits, subset) == labels.numpy()))
            total += len(labels)
        if not total:
            raise ValueError("an ImageNet-OOD set has no images")
        return correct, total

    def _tfds_corruption_errors(self, logits_fn, size, classes, data_dir):
        """Returns ({corruption: [error per severity]}, images per set)."""
        errors, n = {}, 0
        for corruption in self.corruptions:
            errors[corruption] = []
            for severity in self.severities:
                ood_set = ood_data.corrupted_set(corruption, severity)
                examples = ood_data.load_examples(ood_set, data_dir, self.max_examples)
                correct, n = self._score(
                    logits_fn,
                    self._batches(examples, size, ood_set.crop_fraction),
                    classes,
                    None,
                )
                errors[corruption].append(1.0 - correct / n)
        return errors, n

    def _generated_errors(self, logits_fn, examples, size, crop, classes, report):
        """Returns ({corruption: [error per severity]}, images) of the clean
        `examples` corrupted in memory (one pass over the clean images)."""
        keys = [(c, s) for c in self.corruptions for s in self.severities]
        correct = dict.fromkeys(keys, 0)
        total = 0
        for images, labels in self._batches(examples, size, crop):
            images, labels = images.numpy(), labels.numpy()
            for corruption, severity in keys:
                corrupted = corruptions.corrupt_images(
                    images, corruption, severity, self.seed, start=total
                )
                logits = classes.check(logits_fn(tf.constant(corrupted)).numpy())
                correct[corruption, severity] += int(
                    np.sum(top1_predictions(logits, None) == labels)
                )
            total += len(labels)
            report(f"[imagenet_ood] generated corruptions: {total} images")
        errors = {
            c: [1.0 - correct[c, s] / total for s in self.severities]
            for c in self.corruptions
        }
        return errors, total

    def _corruption_measurements(self, errors, name, split, n, normalised):
        """Yields per-corruption errors, CE and mCE (or the unnormalised mean
        corruption error when there is no AlexNet reference)."""
        where = dict(dataset=name, split=split, test_size=n)
        for corruption, values in errors.items():
            yield ModuleMeasurement(
                f"error_{corruption}", float(np.mean(values)), **where
            )
            if normalised:
                ce = np.mean(values) / ood_data.ALEXNET_ERRORS[corruption]
                yield ModuleMeasurement(f"ce_{corruption}", float(ce), **where)
        if normalised:
            yield ModuleMeasurement("mce", mean_corruption_error(errors), **where)
        else:
            mean = float(np.mean([np.mean(v) for v in errors.values()]))
            yield ModuleMeasurement("mean_corruption_error", mean, **where)


def mean_corruption_error(errors, baseline=None):
    """Returns mCE = mean_c [mean_s E_{c,s} / baseline_c].

    `errors` maps corruption -> top-1 errors over severities; `baseline` maps
    corruption -> AlexNet's mean error over severities (ALEXNET_ERRORS).
    """
    baseline = baseline or ood_data.ALEXNET_ERRORS
    missing = sorted(set(errors) - set(baseline))
    if missing:
        raise ValueError(f"no baseline error for {', '.join(missing)}")
    return float(np.mean([np.mean(e) / baseline[c] for c, e in errors.items()]))


def top1_predictions(logits, subset=None):
    """Returns [N] argmax classes; with `subset` (class indices) the argmax
    over those classes only, mapped back to the full index."""
    if subset is None:
        return np.argmax(logits, axis=1)
    return np.asarray(subset)[np.argmax(logits[:, subset], axis=1)]


class _ImageNetClasses:
    """Checks a module's logits are ImageNet's 1000 classes (dropping a
    leading background class when there are 1001)."""

    def __init__(self, handle):
        self.handle = handle

    def check(self, logits):
        """Returns [N, 1000] logits, or raises ModuleError."""
        k = logits.shape[-1]
        if k == ood_data.NUM_IMAGENET_CLASSES:
            return logits
        if k == ood_data.NUM_IMAGENET_CLASSES + 1:
            return logits[:, 1:]
        raise ModuleError(
            f"{self.handle} has {k} logits; the ImageNet evaluations need 1000 "
            "(or 1001 with background class 0)"
        )


class _DatasetClasses:
    """Checks a module's logits have one entry per class of a dataset."""

    def __init__(self, handle, dataset):
        self.handle = handle
        self.dataset = dataset

    def check(self, logits):
        """Returns `logits`, or raises ModuleError."""
        if logits.shape[-1] != self.dataset.num_classes:
            raise ModuleError(
                f"{self.handle} has {logits.shape[-1]} logits but {self.dataset.name} "
                f"has {self.dataset.num_classes} classes; score a module trained on "
                "this dataset"
            )
        return logits
