"""Smoke: the transfer evaluations at toy size, on embedded data only.

Command:
  make demo   # once, for a module
  zoo-benchmark --config=smoke --module=runs/demo/modules/resnet50_softmax_seed0
Expected: rows for linear probe, kNN, class separation and fine-tuning on
digits 5-9 (the transfer task, chance 0.2), in under a minute on 2 CPU cores
for the demo's softmax module (measured: linear probe 0.87, kNN 0.83, class
separation R^2 0.32, fine-tuning 0.73 after only 100 steps). These make
sense for any module; Chexpert, ImageNet-OOD and calibration need data this
config does not have (`smoke_all` runs them on stand-ins made of digits).
The data needs no download: scikit-learn's digits. A sandboxed run is
stopped after 10 minutes.
"""

from benchmark.configs.config import BenchmarkConfig, evaluation


def get_config():
    """Returns the smoke config (what a first-time user runs)."""
    return BenchmarkConfig(
        name="smoke",
        datasets=("digits_5to9",),
        time_limit_s=600,  # a sandboxed smoke run takes about a minute
        evaluations=(
            evaluation("linear_probe"),
            evaluation("knn"),
            evaluation("class_separation"),
            evaluation(
                "fine_tune",
                learning_rates=(0.01, 0.1),
                weight_decays=(0.0,),
                steps=100,
                batch_size=32,
                cache_images=True,
            ),
        ),
    )
