"""Run a model over many images: one compiled forward pass per chunk, instead of Keras's `predict` loop.

Measured on 10,000 images, 2 cores: the U-Net generator took 10.3 s with `predict(batch_size=256)` and
7.0 s as compiled calls on chunks of 256, at the same peak memory (the classifier: 1.3 s and 1.1 s).
Larger chunks were no faster and cost memory (1000: +0.44 GB of U-Net activations).
Each model's compiled call is made once and kept while the model lives: evaluate reads the same two models ~40
times, and tracing a new function for each read cost ~0.2 s a time.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from pipeline.training.models import DIGIT_READING, digit_reader, generator_input, has_layer, is_blind

CHUNK = 256
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its compiled inference call


def _compiled(model: keras.Model):
    """The model's compiled inference call; it holds the model weakly, so the cache does not keep it alive."""
    if model not in _COMPILED:
        ref = weakref.ref(model)
        _COMPILED[model] = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True)
    return _COMPILED[model]


def forward(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """`model` in inference mode (BatchNorm on its moving statistics, no dropout) on `images`, in order."""
    call = _compiled(model)
    return np.concatenate([call(images[start : start + CHUNK]).numpy() for start in range(0, len(images), CHUNK)])


def read(classifier: keras.Model, images: np.ndarray) -> np.ndarray:
    """The digit (class) a classifier reads in each image."""
    return forward(classifier, images).argmax(axis=1)


def generator_reading(generator, masked, holes):
    """The digit the generator itself read in each masked image (a recipe with a digit reader), or None if it has no
    reader. Beside the judge's reading of the restoration it splits what is left: digits the generator
    misread, and digits it read right but drew so that the judge reads them otherwise."""
    if not has_layer(generator, DIGIT_READING):
        return None
    return read(digit_reader(generator), generator_input(masked, None if is_blind(generator) else holes))
