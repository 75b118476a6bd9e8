"""ImageNet distribution shift: top-1 of the module's own classifier on
ImageNet-V2, -A, -R, -Sketch and clean validation, and ImageNet-C's mCE.

Protocol (Kornblith et al. 2021; docs/paper.md): the module's `logits`
signature scores each image (resize the shorter side to size / 0.875, central
crop), read through the harness's cached extraction; ImageNet-A and -R take
the argmax over their 200 classes only. The logits must have 1000 entries, or
1001 with the unused background class 0 (the authors' released models),
which is dropped.

mCE (Hendrycks & Dietterich 2019): E_{c,s} is the top-1 error on corruption c
at severity s; CE_c = mean_s E_{c,s} / AlexNet's mean error on c;
mCE = mean_c CE_c over the 15 corruptions. ImageNet-C comes from TFDS
(imagenet2012_corrupted, "tfds") or is generated in memory from the clean
validation images at the module's resolution by benchmark.data.corruptions
("generated"; our implementations, so AlexNet's errors are only an
approximate reference there; docs/evaluations.md).

Any labelled dataset can stand in for ImageNet (`data` other than
"imagenet2012"): its test split is the clean set and the generated
corruptions are applied to it; the logits must then have one entry per class
of the dataset, and without AlexNet errors for it the unnormalised mean
corruption error is reported.
"""

import numpy as np

from benchmark.data import corruptions
from benchmark.data import ood as ood_data
from benchmark.evaluators.base import (
    EVALUATORS,
    Evaluator,
    Measurement,
    check_positive,
)
from benchmark.features.extract import Transform
from benchmark.modules.loading import ModuleError

IMAGENET = "imagenet2012"
ALL_SETS = (*ood_data.OOD_SETS, "imagenet_c")
SOURCES = ("tfds", "generated")


@EVALUATORS.register("imagenet_ood")
class ImageNetOOD(Evaluator):
    """Top-1 on the ImageNet shift sets and mCE on ImageNet-C.

    Args:
      data: "imagenet2012" (the prepared TFDS ImageNet sets) or the spec of a
        labelled dataset standing in for ImageNet (module docstring).
      sets: which of imagenet2012, imagenet_v2, imagenet_a, imagenet_r,
        imagenet_sketch and imagenet_c to measure (a stand-in has only its
        clean test split and imagenet_c).
      corruptions: the ImageNet-C corruptions (mCE averages over them).
      severities: the severities averaged per corruption.
      imagenet_c_source: "tfds" (prepared imagenet2012_corrupted) or
        "generated" (benchmark.data.corruptions on the clean images).
      max_per_class: use at most this many images per class of each set.
      crop_fraction: central crop fraction of a stand-in's images (the
        ImageNet sets carry their own: 0.875, 1.0 for ImageNet-C).
      seed: seed of the generated corruptions.
    """

    name = "imagenet_ood"
    requires = ("logits",)

    def __init__(
        self,
        *,
        data=IMAGENET,
        sets=ALL_SETS,
        corruptions=corruptions.CORRUPTIONS,
        severities=corruptions.SEVERITIES,
        imagenet_c_source="tfds",
        max_per_class=None,
        crop_fraction=0.875,
        seed=0,
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
        if any(int(s) not in corruptions_severities() for s in severities):
            raise ValueError(f"severities must be in 1..5, got {list(severities)}")
        check_positive(max_per_class=max_per_class)
        self.data = data
        self.sets = tuple(sets)
        self.corruptions = tuple(corruptions)
        self.severities = tuple(int(s) for s in severities)
        self.imagenet_c_source = imagenet_c_source
        self.max_per_class = max_per_class
        self.crop_fraction = crop_fraction
        self.seed = seed

    def data_specs(self):
        """Returns every set `run` reads, so all are checked before any work."""
        if self.data != IMAGENET:
            return [self.data]
        specs = [name for name in self.sets if name != "imagenet_c"]
        if "imagenet_c" in self.sets:
            if self.imagenet_c_source == "tfds":
                specs += [
                    ood_data.corrupted_set(c, s).name
                    for c in self.corruptions
                    for s in self.severities
                ]
            else:
                specs.append(IMAGENET)
        return list(dict.fromkeys(specs))

    def run(self, context):
        """Yields top-1 per set ("top1") and ImageNet-C's "mce" and per
        corruption "ce_<name>" / "error_<name>"."""
        if self.data != IMAGENET:
            yield from self._run_stand_in(context)
            return
        classes = _ImageNetClasses(context.module.handle)
        for name in self.sets:
            if name == "imagenet_c":
                continue
            ood_set = ood_data.OOD_SETS[name]
            subset = ood_data.class_subset(ood_set.subset) if ood_set.subset else None
            dataset = context.dataset(ood_set.name)
            correct, n = self._score(
                context, dataset, ood_set.split, ood_set.crop_fraction, classes, subset
            )
            context.report(
                f"[imagenet_ood] {ood_set.name}: top1 {correct / n:.4f} ({n} images)"
            )
            yield Measurement(
                "top1",
                correct / n,
                dataset=ood_set.name,
                split=ood_set.split,
                test_size=n,
            )
        if "imagenet_c" not in self.sets:
            return
        if self.imagenet_c_source == "tfds":
            errors, n = self._tfds_corruption_errors(context, classes)
            name, split = "imagenet2012_corrupted", "validation"
        else:
            clean = ood_data.OOD_SETS[IMAGENET]
            errors, n = self._generated_errors(
                context,
                context.dataset(IMAGENET),
                clean.split,
                clean.crop_fraction,
                classes,
            )
            name, split = f"generated-c:{IMAGENET}", clean.split
        yield from self._corruption_measurements(errors, name, split, n, True)

    def _run_stand_in(self, context):
        """Yields clean top-1 and generated-corruption errors on the stand-in's
        test split, for a module whose logits are its classes."""
        data = context.dataset(self.data)
        split = data.test_split
        classes = _DatasetClasses(context.module.handle, data)
        correct, n = self._score(
            context, data, split, self.crop_fraction, classes, None
        )
        context.report(f"[imagenet_ood] {data.name}/{split}: top1 {correct / n:.4f}")
        yield Measurement(
            "top1", correct / n, dataset=data.name, split=split, test_size=n
        )
        if "imagenet_c" in self.sets:
            errors, n = self._generated_errors(
                context, data, split, self.crop_fraction, classes
            )
            yield from self._corruption_measurements(
                errors, f"generated-c:{data.name}", split, n, False
            )

    def _score(self, context, dataset, split, crop, classes, subset, transform=None):
        """Returns (number correct, number of images) of one set."""
        scored = context.features(
            dataset,
            split,
            output="logits",
            max_per_class=self.max_per_class,
            crop_fraction=crop,
            transform=transform,
        )
        logits = classes.check(scored.features)
        correct = int(np.sum(top1_predictions(logits, subset) == scored.labels))
        return correct, len(scored)

    def _tfds_corruption_errors(self, context, classes):
        """Returns ({corruption: [error per severity]}, images per set)."""
        errors, n = {}, 0
        for corruption in self.corruptions:
            errors[corruption] = []
            for severity in self.severities:
                ood_set = ood_data.corrupted_set(corruption, severity)
                correct, n = self._score(
                    context,
                    context.dataset(ood_set.name),
                    ood_set.split,
                    ood_set.crop_fraction,
                    classes,
                    None,
                )
                errors[corruption].append(1.0 - correct / n)
        return errors, n

    def _generated_errors(self, context, dataset, split, crop, classes):
        """Returns ({corruption: [error per severity]}, images) of the clean
        split corrupted in memory (one cached extraction per corruption and
        severity)."""
        errors, n = {}, 0
        for corruption in self.corruptions:
            errors[corruption] = []
            for severity in self.severities:
                transform = corruption_transform(corruption, severity, self.seed)
                correct, n = self._score(
                    context, dataset, split, crop, classes, None, transform
                )
                errors[corruption].append(1.0 - correct / n)
        return errors, n

    def _corruption_measurements(self, errors, name, split, n, normalised):
        """Yields per-corruption errors, CE and mCE (or the unnormalised mean
        corruption error when there is no AlexNet reference)."""
        where = dict(dataset=name, split=split, test_size=n)
        for corruption, values in errors.items():
            yield Measurement(f"error_{corruption}", float(np.mean(values)), **where)
            if normalised:
                ce = np.mean(values) / ood_data.ALEXNET_ERRORS[corruption]
                yield Measurement(f"ce_{corruption}", float(ce), **where)
        if normalised:
            yield Measurement("mce", mean_corruption_error(errors), **where)
        else:
            mean = float(np.mean([np.mean(v) for v in errors.values()]))
            yield Measurement("mean_corruption_error", mean, **where)


def corruptions_severities():
    """Returns the valid severities, 1..5."""
    return tuple(corruptions.SEVERITIES)


def corruption_transform(corruption, severity, seed):
    """Returns the Transform applying a generated corruption to each batch;
    the example's position in the split seeds its noise, so the result does
    not depend on the batch size."""
    return Transform(
        key={"corruption": corruption, "severity": int(severity), "seed": int(seed)},
        fn=lambda images, start: corruptions.corrupt_images(
            images, corruption, severity, seed, start=start
        ),
    )


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
