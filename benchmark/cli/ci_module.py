"""Writes the CI gate's module: a small feature extractor whose weights come
from a stateless generator with a fixed seed, so every machine builds the
same bytes-for-bytes variables (no training, no download). `.ci/gate` scores
it with the smoke config against the committed `.ci/baseline.json`.

  python -m benchmark.cli.ci_module OUT_DIR
"""

import sys

from zoo.cli import quiet_tensorflow

quiet_tensorflow()  # before TensorFlow's start-up lines can print
import tensorflow as tf  # noqa: E402

SEED = (20211206, 1)
IMAGE_SIZE = 16


class CIModule(tf.Module):
    """ReLU random features of a 6 x 6 thumbnail, with metadata-free input
    contract (float images in [0, 1], any size)."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([108, 64], seed=SEED))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        x = tf.reshape(tf.image.resize(images, [6, 6]), [-1, 108])
        return tf.nn.relu(tf.matmul(x, self.w))


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: python -m benchmark.cli.ci_module OUT_DIR")
    tf.saved_model.save(CIModule(), argv[1])
    print(argv[1])


if __name__ == "__main__":
    main(sys.argv)
