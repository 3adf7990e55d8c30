"""Run a model over many images: one compiled forward pass per chunk, instead of Keras's `predict` loop.

Measured on 10,000 images, 2 cores: the U-Net generator took 10.3 s with `predict(batch_size=256)` and
7.0 s as compiled calls on chunks of 256, at the same peak memory (the classifier: 1.3 s and 1.1 s).
Larger chunks were no faster and cost memory (1000: +0.44 GB of U-Net activations).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

CHUNK = 256


def forward(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """`model` in inference mode (BatchNorm on its moving statistics, no dropout) on `images`, in order."""
    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return np.concatenate([call(images[start : start + CHUNK]).numpy() for start in range(0, len(images), CHUNK)])


def read(classifier: keras.Model, images: np.ndarray) -> np.ndarray:
    """The digit (class) a classifier reads in each image."""
    return forward(classifier, images).argmax(axis=1)
