"""The paper's eight transfer datasets, as TFDS datasets with the official splits.

Each registered entry is a `TransferSpec`: the TFDS name, the TFDS split
expressions used as "train" (what the evaluators fit on; they carve their own
validation split out of it) and "test", the metric reported (docs/paper.md:
mean per-class accuracy for Pets and Flowers, top-1 elsewhere) and the sizes
TFDS prepares. The registered name is the paper's dataset name, so measured
rows and reported rows share the `dataset` column. Data is never downloaded:
prepare it with `tfds build NAME` and pass its folder as --data_dir.
"""

import dataclasses
import os

from benchmark.data import ood as ood_data
from zoo import data as zoo_data
from zoo.data.base import DatasetError, hash_parts
from zoo.data.tfds_dataset import TfdsDataset
from zoo.registry import Registry, did_you_mean

TRANSFER_DATASETS = Registry("transfer dataset")
CHEXPERT_PREFIX = "chexpert:"

# The paper's order (Table 1).
TRANSFER_SUITE = (
    "food101",
    "cifar10",
    "cifar100",
    "caltech_birds2011",
    "sun397",
    "cars196",
    "oxford_iiit_pet",
    "oxford_flowers102",
)


@dataclasses.dataclass(frozen=True)
class TransferSpec:
    """How one transfer dataset is read and scored.

    Attributes:
      tfds_name: the TFDS builder name, with config ("sun397/standard-part1-120k").
      train_split: TFDS split expression fitted on ("train+validation").
      test_split: TFDS split expression scored on.
      metric: "top1" or "mean_per_class" (benchmark.stats.metrics).
      train_size: examples TFDS prepares for `train_split`.
      test_size: examples TFDS prepares for `test_split`.
      note: where the data differs from the paper's.
    """

    tfds_name: str
    train_split: str
    test_split: str
    metric: str
    train_size: int
    test_size: int
    note: str = ""


@TRANSFER_DATASETS.register("food101")
def food101():
    """Food-101: TFDS calls the official test set "validation"."""
    return TransferSpec("food101", "train", "validation", "top1", 75_750, 25_250)


@TRANSFER_DATASETS.register("cifar10")
def cifar10():
    """CIFAR-10, official train/test."""
    return TransferSpec("cifar10", "train", "test", "top1", 50_000, 10_000)


@TRANSFER_DATASETS.register("cifar100")
def cifar100():
    """CIFAR-100 (fine labels), official train/test."""
    return TransferSpec("cifar100", "train", "test", "top1", 50_000, 10_000)


@TRANSFER_DATASETS.register("caltech_birds2011")
def caltech_birds2011():
    """CUB-200-2011, the substitute for Birdsnap (not in TFDS)."""
    return TransferSpec(
        "caltech_birds2011",
        "train",
        "test",
        "top1",
        5_994,
        5_794,
        note="substitute for Birdsnap (47,386/2,443 in the paper), not in TFDS",
    )


@TRANSFER_DATASETS.register("sun397")
def sun397():
    """SUN397, official partition 1 (50 train and 50 test images per class)."""
    return TransferSpec(
        "sun397/standard-part1-120k",
        "train",
        "test",
        "top1",
        19_850,
        19_850,
        note="TFDS resizes images to at most 120,000 pixels",
    )


@TRANSFER_DATASETS.register("cars196")
def cars196():
    """Stanford Cars, official train/test."""
    return TransferSpec("cars196", "train", "test", "top1", 8_144, 8_041)


@TRANSFER_DATASETS.register("oxford_iiit_pet")
def oxford_iiit_pet():
    """Oxford-IIIT Pets, official trainval/test, mean per-class accuracy."""
    return TransferSpec(
        "oxford_iiit_pet", "train", "test", "mean_per_class", 3_680, 3_669
    )


@TRANSFER_DATASETS.register("oxford_flowers102")
def oxford_flowers102():
    """Oxford Flowers 102: train + validation (10 + 10 per class) / test,
    mean per-class accuracy."""
    return TransferSpec(
        "oxford_flowers102",
        "train+validation",
        "test",
        "mean_per_class",
        2_040,
        6_149,
    )


def list_transfer_datasets(pattern="*"):
    """Returns the sorted registered transfer dataset names matching `pattern`."""
    return TRANSFER_DATASETS.names(pattern)


def transfer_spec(name):
    """Returns the TransferSpec registered as `name`."""
    return TRANSFER_DATASETS.create(name)


def load_benchmark_dataset(spec, data_dir=None):
    """Returns the dataset named by `spec`.

    A registered transfer name ("cifar10") gives its `TransferDataset`; an
    ImageNet set name ("imagenet2012", "imagenet_v2", ...,
    "imagenet2012_corrupted/fog_3") its `NamedTfdsDataset`;
    "chexpert:PATH" (or "chexpert:digits", the embedded stand-in) a
    `benchmark.data.chexpert.ChexpertDataset`; any other spec goes to
    `zoo.data.load_dataset` (embedded names, tfds:NAME, image folders).
    Raises DatasetError for an unknown name.
    """
    if spec in TRANSFER_DATASETS:
        return TransferDataset(spec, data_dir)
    ood_set = ood_data.find_set(spec)
    if ood_set is not None:
        return NamedTfdsDataset(ood_set.name, ood_set.tfds_name, data_dir)
    if isinstance(spec, str) and spec.startswith(CHEXPERT_PREFIX):
        from benchmark.data.chexpert import load_chexpert

        return load_chexpert(spec[len(CHEXPERT_PREFIX) :])
    if not _zoo_resolves(spec):
        known = [*TRANSFER_DATASETS.names(), *ood_data.OOD_SETS]
        known += zoo_data.list_datasets()
        raise DatasetError(
            f"unknown dataset '{spec}'; {did_you_mean(spec, known)}use a transfer set "
            f"({', '.join(TRANSFER_SUITE)}), an ImageNet set "
            f"({', '.join(ood_data.OOD_SETS)}), chexpert:DIR, one of "
            f"{', '.join(zoo_data.list_datasets())}, tfds:NAME, or a path to an "
            "image folder ROOT/<split>/<class>/*"
        )
    return zoo_data.load_dataset(spec, data_dir=data_dir)


def _zoo_resolves(spec):
    """Returns whether zoo.data.load_dataset would try to open `spec`."""
    return isinstance(spec, str) and (
        spec in zoo_data.DATASETS
        or spec.startswith((zoo_data.TFDS_PREFIX, zoo_data.FOLDER_PREFIX))
        or "/" in spec
        or spec.startswith((".", "~"))
        or os.path.exists(spec)
    )


class NamedTfdsDataset(TfdsDataset):
    """A prepared TFDS dataset recorded under a short name ("imagenet_v2" for
    tfds:imagenet_v2/matched-frequency), so measured rows meet reported ones.

    Args:
      name: the leaderboard dataset name.
      tfds_name: the TFDS builder name, with config.
      data_dir: where the prepared TFDS data lives (TFDS's default when None).
    """

    def __init__(self, name, tfds_name, data_dir=None):
        super().__init__(tfds_name, data_dir=data_dir)
        self.name = name

    def fingerprint(self):
        """Returns the TFDS fingerprint extended by the short name."""
        return hash_parts(super().fingerprint(), self.name)


class TransferDataset(TfdsDataset):
    """A prepared TFDS dataset read with a registered protocol's splits.

    `name` is the registered (paper's) dataset name; `train_split` and
    `test_split` are TFDS split expressions such as "train+validation".

    Args:
      name: a registered transfer dataset name.
      data_dir: where the prepared TFDS data lives (TFDS's default when None).
    """

    def __init__(self, name, data_dir=None):
        self.spec = transfer_spec(name)
        super().__init__(self.spec.tfds_name, data_dir=data_dir)
        self.name = name
        protocol_splits = (self.spec.train_split, self.spec.test_split)
        for split in protocol_splits:
            for part in split.split("+"):
                self._check_split(part)
        self.splits = tuple(dict.fromkeys((*self.splits, *protocol_splits)))
        self.train_split = self.spec.train_split

    @property
    def test_split(self):
        """Returns the protocol's test split expression."""
        return self.spec.test_split

    @property
    def metric(self):
        """Returns the metric the protocol reports."""
        return self.spec.metric

    def fingerprint(self):
        """Returns the TFDS fingerprint extended by the split expressions."""
        return hash_parts(
            super().fingerprint(), self.spec.train_split, self.spec.test_split
        )


def dataset_metric(dataset):
    """Returns the accuracy the protocol reports on `dataset`: its registered
    metric, also for "tfds:NAME" of a registered set; "top1" otherwise."""
    metric = getattr(dataset, "metric", None)
    if metric:
        return metric
    for name in TRANSFER_DATASETS.names():
        spec = transfer_spec(name)
        if dataset.name in (f"tfds:{spec.tfds_name}", f"tfds:{name}"):
            return spec.metric
    return "top1"


def size_mismatches(dataset):
    """Returns one line per split of a transfer dataset whose size differs from
    the registered one ([] for other datasets)."""
    spec = getattr(dataset, "spec", None)
    if not isinstance(spec, TransferSpec):
        return []
    lines = []
    for split, expected in (
        (spec.train_split, spec.train_size),
        (spec.test_split, spec.test_size),
    ):
        found = dataset.num_examples(split)
        if found != expected:
            lines.append(
                f"{dataset.name} split '{split}' has {found} examples, expected "
                f"{expected} ({spec.tfds_name}); check the TFDS version"
            )
    return lines
