"""Local: the frozen-feature protocols on datasets named on the command line.

Command:
  zoo-benchmark --config=local --module=MODULE --datasets=path/to/cifar10 \
      --max_per_class=100
  (an image folder ROOT/<split>/<class>/*.jpg with a train and a test split,
  or any dataset spec: tfds:NAME, a transfer set name, digits_5to9)
Expected: linear probe, kNN and class separation rows per dataset. For the
imagenette modules of `zoo-matrix --config=imagenette` on a 100-per-class
CIFAR-10 folder: linear probe about 0.33-0.38, kNN about 0.30, R^2 about 0.13
(chance 0.1), in a few minutes on 2 CPU cores. Add evaluations with
--set, e.g. --set=knn.weighted=true.
"""

from benchmark.configs.config import BenchmarkConfig, evaluation


def get_config():
    """Returns the local config; its datasets come from --datasets."""
    return BenchmarkConfig(
        name="local",
        datasets=(),
        evaluations=(
            evaluation("linear_probe"),
            evaluation("knn"),
            evaluation("class_separation"),
        ),
    )
