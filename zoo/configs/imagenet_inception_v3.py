"""The paper's Inception v3 ImageNet run: the ResNet-50 recipe at 299 px.

The paper uses the same hyperparameters as for ResNet-50 and picks the epoch on
the 50,046-image holdout; it does not publish Inception v3 epoch counts, so
this config trains up to 200 epochs and stops 20 epochs after the best holdout
epoch (the best epoch's EMA weights are what gets exported either way).

Command (TPU pod slice; data prepared as for imagenet_resnet50):
  zoo-train --config=imagenet_inception_v3 --objective=softmax --seed=0 \
      --strategy=tpu:NAME --data_dir=gs://BUCKET/tfds \
      --workdir=gs://BUCKET/runs/iv3_softmax_0
Expected (paper, Table B.1): ImageNet top-1 78.6 softmax, 78.8 label
smoothing, 79.1 sigmoid, 79.0 extra final-layer L2, 79.0 dropout, 78.9 logit
penalty, 78.8 logit normalisation, 78.9 cosine softmax, 77.7 squared error.
"""

from zoo.configs import imagenet_resnet50


def get_config():
    """Returns the Inception v3 ImageNet config."""
    return imagenet_resnet50.get_config().replace(
        arch="inception_v3",
        image_size=299,
        epochs=200,
        early_stopping_patience=20,
        objective_overrides={},
    )
