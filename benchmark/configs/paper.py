"""Paper: the protocol of Kornblith et al. (2021) on prepared TFDS data.

Command:
  zoo-benchmark --config=paper --module=MODULE --data_dir=~/tensorflow_datasets \
      --set=chexpert.data=chexpert:/data/CheXpert-v1.0-small
  (TFDS data prepared beforehand with `tfds build NAME`, ImageNet from its
  manual download; CheXpert from its own download. The default CheXpert spec
  `chexpert:CheXpert-v1.0-small` is the unpacked archive in the current folder.)
Expected: for the authors' softmax ResNet-50 the paper reports linear probe
74.6 (Food-101) and 92.4 (CIFAR-10) percent, class separation R^2 0.349 on
the ImageNet training set, and ImageNet top-1 77.0 (docs/paper.md has every
reported number; `zoo-leaderboard --source=reported` lists them). The whole
config is days of accelerator time (72 fine-tuning fits of 20,000 steps per
dataset); run parts with --evaluations=linear_probe,knn.

Evaluations: linear probe, kNN and fine-tuning on the eight transfer sets,
and k-shot least squares (1/5/10/25 shots, 5 draws; not in the paper, from
the same cached features);
Chexpert in both settings (official validation and an i.i.d. split);
ImageNet-OOD (V2, A, R, Sketch, C with mCE) and calibration of the module's
own classifier on ImageNet validation; class separation R^2 on the ImageNet
training set.
"""

from benchmark.configs.config import BenchmarkConfig, evaluation
from benchmark.data.transfer import TRANSFER_SUITE


def get_config():
    """Returns the paper's protocol."""
    return BenchmarkConfig(
        name="paper",
        datasets=TRANSFER_SUITE,
        batch_size=256,
        evaluations=(
            evaluation("linear_probe"),
            evaluation("knn"),
            evaluation("few_shot"),
            evaluation("fine_tune"),
            evaluation("chexpert", data="chexpert:CheXpert-v1.0-small"),
            evaluation("imagenet_ood", data="imagenet2012"),
            evaluation("calibration", data="imagenet2012"),
            evaluation("class_separation", data="imagenet2012", split="train"),
        ),
    )
