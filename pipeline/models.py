"""The GAN's networks: generators (the classic autoencoder or a U-Net) and discriminators (global or patch)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from pipeline.config import IMAGE_SIDE, NUM_CLASSES

IMAGE_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 1)
GENERATOR_INPUT_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 2)


def generator_input(masked: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """What every generator takes: channel 0 the masked image in [-1, 1], channel 1 the hole (1 inside, 0 outside)."""
    return np.concatenate([masked, holes[..., None].astype(np.float32)], axis=-1)


def _conv_bn_relu(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def _autoencoder(x):
    """The chapter's conv autoencoder: 28 -> 14 -> 7 by average pooling, back up by upsampling."""
    x = _conv_bn_relu(x, 32)
    x = layers.AveragePooling2D(2)(x)
    x = _conv_bn_relu(x, 64)
    x = layers.AveragePooling2D(2)(x)
    x = _conv_bn_relu(x, 128)
    x = _conv_bn_relu(x, 128)
    x = layers.UpSampling2D(2)(x)
    x = _conv_bn_relu(x, 64)
    x = layers.UpSampling2D(2)(x)
    return _conv_bn_relu(x, 32)


def _unet(x):
    """The same encoder and decoder with skip connections, so the decoder sees the known pixels at full detail."""
    skip28 = _conv_bn_relu(x, 32)
    skip14 = _conv_bn_relu(layers.AveragePooling2D(2)(skip28), 64)
    x = _conv_bn_relu(layers.AveragePooling2D(2)(skip14), 128)
    x = _conv_bn_relu(x, 128)
    x = _conv_bn_relu(layers.Concatenate()([layers.UpSampling2D(2)(x), skip14]), 64)
    return _conv_bn_relu(layers.Concatenate()([layers.UpSampling2D(2)(x), skip28]), 32)


def build_generator(kind: str, mask_channel: bool, composite: bool) -> keras.Model:
    """`kind` body ("autoencoder" = the classic, or "unet"), tanh output.

    mask_channel: the body also sees where the hole is. composite: the output keeps
    every known pixel of the input and replaces only the hole.
    """
    inputs = keras.Input(GENERATOR_INPUT_SHAPE, name="masked_and_hole")
    image, hole = inputs[..., :1], inputs[..., 1:]
    body = {"autoencoder": _autoencoder, "unet": _unet}[kind]
    x = body(inputs if mask_channel else image)
    # Outputs in float32 under any dtype policy: the composite must copy the known pixels bit for bit.
    restored = layers.Conv2D(1, 3, padding="same", activation="tanh", name="restored", dtype="float32")(x)
    if composite:
        restored = hole * restored + (1.0 - hole) * image
    return keras.Model(inputs, restored, name=f"{kind}_generator")


def build_discriminator(kind: str, class_head: bool = False) -> keras.Model:
    """Three strided convs with LeakyReLU 0.2 and dropout (the chapter's), then either one probability
    that the whole image is real ("global") or one per 4x4 grid cell, each seeing a ~15-pixel patch ("patch").

    class_head: a second output, the probabilities of the 10 classes, read from the same features
    (as in AC-GAN), so that the generator can be told which class its restoration reads as."""
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = inputs
    for filters in (64, 128, 256):
        x = layers.Conv2D(filters, 3, strides=2, padding="same")(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
        x = layers.Dropout(0.25)(x)
    if kind == "patch":
        outputs = layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="p_real", dtype="float32")(x)
    else:
        outputs = layers.Dense(1, activation="sigmoid", name="p_real", dtype="float32")(layers.Flatten()(x))
    if class_head:
        classes = layers.Dense(NUM_CLASSES, activation="softmax", name="p_class", dtype="float32")(layers.Flatten()(x))
        outputs = [outputs, classes]
    return keras.Model(inputs, outputs, name=f"{kind}_discriminator")
