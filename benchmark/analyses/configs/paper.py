"""The paper's representation analyses (Kornblith et al. 2021, section 4 and
Figure 3) on ImageNet, and Zhou et al.'s neural collapse.

Command:
  zoo-analyze --config=paper --data_dir=~/tensorflow_datasets --out=runs/paper_cka \
      --modules=authors_resnet50_softmax_seed0,authors_resnet50_sigmoid_seed0
Expected (the paper's findings, not measured here: the data cannot be
fetched on this team's machines): same-layer CKA between objectives near 1
in the early blocks and lower in the last ones; class separation R^2
rising towards the output; softmax's penultimate features 92.8% non-zero.
CKA uses minibatches of 1,500 and 10 passes over the ImageNet validation
set with the training augmentation, as the paper does. The paper's R^2 and
the neural-collapse statistics are on the training set:
  zoo-analyze --config=paper --set=split=train \
      --analyses=class_separation,neural_collapse,sparsity ...
"""

from benchmark.analyses.config import AnalysisConfig


def get_config():
    return AnalysisConfig(
        name="paper",
        dataset="imagenet2012",
        split="validation",
        analyses={
            "cka": {"batch_size": 1500, "passes": 10, "augment": True},
            "sparsity": {},
            "neural_collapse": {},
            "class_separation": {},
        },
        batch_size=100,
    )
