"""Smoke: every analysis at toy size on the embedded digits.

Command:
  make demo   # once, for modules
  zoo-analyze --config=smoke --out=runs/analysis_smoke \
      --modules=runs/demo/modules/resnet50_softmax_seed0,runs/demo/modules/resnet50_cosine_softmax_seed0
Expected: in about 20 s on 2 CPU cores, cka.json with the 18 x 18 layer
matrix of each module pair (minibatches of 128: 5 of the 721 images of
digits 0-4's train split, 81 dropped) and its heatmap PNGs, sparsity, NC1
at every layer with NC2-NC4 on the feature vector, and R^2 per layer, with
one curve per module in class_separation.png and sparsity.png.
"""

from benchmark.analyses.config import AnalysisConfig


def get_config():
    return AnalysisConfig(
        name="smoke",
        dataset="digits_0to4",
        split="train",
        analyses={
            "cka": {"batch_size": 128},
            "sparsity": {},
            "neural_collapse": {},
            "class_separation": {},
        },
        batch_size=128,
    )
