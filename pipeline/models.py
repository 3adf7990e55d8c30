"""The three networks of the classic experiment, built with the Keras functional API."""

from __future__ import annotations

import keras
from keras import layers

from pipeline.config import IMAGE_SIDE

IMAGE_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 1)
NUM_CLASSES = 10


def build_classifier() -> keras.Model:
    """Conv 32 s2 / 64 s2 / 128, dropout 0.2, dense 1024, softmax over the 10 classes."""
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(1024, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="classifier")


def _conv_bn_relu(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def build_classic_generator() -> keras.Model:
    """The chapter's conv autoencoder: 28 -> 14 -> 7 by average pooling, back up by upsampling, tanh out."""
    inputs = keras.Input(IMAGE_SHAPE, name="masked")
    x = _conv_bn_relu(inputs, 32)
    x = layers.AveragePooling2D(2)(x)
    x = _conv_bn_relu(x, 64)
    x = layers.AveragePooling2D(2)(x)
    x = _conv_bn_relu(x, 128)
    x = _conv_bn_relu(x, 128)
    x = layers.UpSampling2D(2)(x)
    x = _conv_bn_relu(x, 64)
    x = layers.UpSampling2D(2)(x)
    x = _conv_bn_relu(x, 32)
    outputs = layers.Conv2D(1, 3, padding="same", activation="tanh", name="restored")(x)
    return keras.Model(inputs, outputs, name="generator")


def build_discriminator() -> keras.Model:
    """Three strided convs with LeakyReLU 0.2 and dropout, then the probability that the image is real."""
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = inputs
    for filters in (64, 128, 256):
        x = layers.Conv2D(filters, 3, strides=2, padding="same")(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_real")(x)
    return keras.Model(inputs, outputs, name="discriminator")
