"""The mini-zoo's benchmark: what the mini_zoo study (pipeline/configs/
mini_zoo.py) scores each of its modules on, as a config anyone can run on
one module, so the study's results bundles verify like any submitter's.

Command:
  zoo-benchmark --config=mini_zoo --module=MODULE --datasets=path/to/cifar10 \\
      --set=imagenet_ood.data=path/to/imagenette \\
      --set=class_separation.data=path/to/imagenette \\
      --set=chexpert.data=chexpert:path/to/xrays
  (--evaluations=... without chexpert when there are no X-rays)
Expected: for the mini-zoo's softmax module of seed 0 (8 epochs, 32 px),
about 34% linear, 31% kNN and 30% fine-tuning accuracy on CIFAR-10, R^2
0.16 and Chexpert mean AUC 0.58; docs/reproduction.md has every module's.

  imagenet_ood      source top-1 on the pretraining data's validation split;
  linear_probe      CIFAR-10, 200 images per class and split (15 L2 values);
  knn               the same features, k in 1, 5, 10, 20, 50;
  fine_tune         150 steps of 64 images at learning rate 0.01 alone (not
                    the grid (0.01, 0.05): 400 validation images chose
                    between the rates by noise while their test accuracies
                    differ by 4-5 points, at twice the cost; with 0.01 alone
                    every module stays within the gate's tolerance of the
                    grid's number: perf/fine_tune_budget.py,
                    docs/benchmark_cost.md);
  class_separation  R^2 on 200 images per class of the pretraining train split;
  chexpert          mean AUC of the five pathologies, "valid" setting.
"""

from benchmark.configs.config import BenchmarkConfig, evaluation

SOURCE = "tfds:imagenette"  # the pretraining data; the study sets its own


def get_config():
    """Returns the mini-zoo benchmark on its default data."""
    return BenchmarkConfig(
        name="mini_zoo",
        datasets=("tfds:cifar10",),
        max_per_class=200,  # CIFAR-10: 2,000 train (a fifth for selection), 2,000 test
        batch_size=250,
        evaluations=(
            evaluation("imagenet_ood", data=SOURCE, sets=("imagenet2012",)),
            evaluation("linear_probe", num_l2=15),
            evaluation("knn", ks=(1, 5, 10, 20, 50)),
            evaluation(
                "fine_tune",
                learning_rates=(0.01,),
                weight_decays=(0.0,),
                steps=150,
                batch_size=64,
                cache_images=True,  # the linear probe's 2,000 train images
            ),
            evaluation(
                "class_separation", data=SOURCE, split="train", max_per_class=200
            ),
            evaluation(
                "chexpert",
                data="chexpert:CheXpert-v1.0-small",
                settings=("valid",),
                num_l2=12,
                bootstrap_samples=200,
            ),
        ),
    )
