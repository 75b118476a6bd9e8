"""Smoke: every registered evaluator at toy size, on embedded data only.

Command:
  make demo   # once, for a module
  zoo-benchmark --config=smoke --module=runs/demo/modules/resnet50_softmax_seed0
Expected: rows for all seven evaluators in one run, about a minute on 2 CPU
cores for the demo's modules: linear probe about 0.85-0.9 and kNN about 0.8
on digits 5-9 (the transfer task; chance 0.2), class separation R^2 about
0.35, fine-tuning near the linear probe, Chexpert AUCs on the digits stand-in
(pathology j is digit j of 0-4, the module's own classes: near 1.0),
ImageNet-OOD clean top-1 near 1.0 on digits 0-4 with errors rising under
generated corruptions, and calibration NLL / ECE of the module's head.
The data needs no download: scikit-learn's digits and a CheXpert-format copy
of them (`chexpert:digits`).
"""

from benchmark.config import BenchmarkConfig, evaluation


def get_config():
    """Returns the smoke config (what CI and a first-time user run)."""
    return BenchmarkConfig(
        name="smoke",
        datasets=("digits_5to9",),
        evaluations=(
            evaluation("linear_probe"),
            evaluation("knn"),
            evaluation("class_separation"),
            evaluation(
                "fine_tune",
                learning_rates=(0.01, 0.1),
                weight_decays=(0.0,),
                steps=30,
                batch_size=32,
                max_per_class=40,
                cache_images=True,
            ),
            evaluation(
                "chexpert", data="chexpert:digits", num_l2=12, bootstrap_samples=200
            ),
            evaluation(
                "imagenet_ood",
                data="digits_0to4",
                sets=("imagenet_c",),
                corruptions=("gaussian_noise", "contrast", "pixelate"),
                severities=(1, 3, 5),
            ),
            evaluation("calibration", data="digits_0to4"),
        ),
    )
