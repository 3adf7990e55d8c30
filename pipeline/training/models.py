"""The GAN's networks: generators (the chapter's autoencoder as published, or the project's U-Net) and
discriminators (the chapter's, or patch)."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import layers, ops

from pipeline.common.image import IMAGE_SIDE, NUM_CLASSES

IMAGE_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 1)
GENERATOR_INPUT_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 2)
BOTTLENECK_SIDE = IMAGE_SIDE // 4
DIGIT_READING = "digit_reading"  # the generator layer whose output is its reading of the digit
DAMAGE = "damage"  # the blind generator's layer whose output is where it finds the damage (probability per pixel)
INTACT_LOGIT = -4.0  # the damage head's initial bias
BLIND_PREFIX = "blind_"  # the name of a generator that never reads the hole channel starts so


def generator_input(masked: np.ndarray, holes: np.ndarray | None = None) -> np.ndarray:
    """What every generator takes: channel 0 the masked image in [-1, 1], channel 1 the hole (1 inside, 0 outside;
    all 0 when `holes` is None, for a blind generator, which never reads it)."""
    holes = np.zeros(masked.shape[:3], bool) if holes is None else holes
    return np.concatenate([masked, holes[..., None].astype(np.float32)], axis=-1)


def is_blind(generator: keras.Model) -> bool:
    """True for a generator that restores from the damaged image alone (built with mask_channel false)."""
    return generator.name.startswith(BLIND_PREFIX)


def has_layer(model: keras.Model, name: str) -> bool:
    return name in [layer.name for layer in model.layers]


def digit_reader(generator: keras.Model) -> keras.Model:
    """The generator's own digit reader as a model of its own: its encoder and reading head (layer DIGIT_READING),
    sharing the generator's weights, to read with or to train alone."""
    return keras.Model(generator.input, generator.get_layer(DIGIT_READING).output)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers built inside compute in `name` ("float32", or "mixed_bfloat16": bfloat16 maths, float32
    weights); the global policy is put back afterwards, so nothing else built in the process changes."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


@keras.saving.register_keras_serializable("digit_restore")
class Keras2BatchNormalization(layers.BatchNormalization):
    """BatchNormalization whose moving statistics follow Keras 2's (the chapter's 2018 environment), not Keras 3's.

    Training-mode maths are Keras 3's: each batch is normalised with its own mean and variance. What differs is
    what inference mode reads. Keras 3 keeps a plain moving average started at mean 0 / variance 1, so for the
    first few hundred updates (momentum 0.99) it is mostly that start. Keras 2 updated them with TensorFlow's
    zero-debiased moving average (`assign_moving_average(..., zero_debias=True)`) of the batch mean and of the
    unbiased batch variance (times n / (n - 1 - epsilon)): after k updates with values v_1..v_k,

        moving = sum_i (1 - m) m^(k - i) v_i / (1 - m^k),

    the batches' own statistics from the first update on. The chapter's loop feeds the discriminator with
    `generator.predict()`, i.e. these statistics; with Keras 3's the generator's first predictions are garbage, the
    discriminator wins at once and the generator collapses to black images (docs/recipes.md)."""

    def build(self, input_shape):
        super().build(input_shape)
        shape = (input_shape[self.axis],)
        # TensorFlow's zero-debiased average keeps the biased average (from 0) and the number of updates.
        self.biased_mean = self.add_weight(
            shape=shape, name="biased_mean", initializer="zeros", trainable=False, autocast=False
        )
        self.biased_variance = self.add_weight(
            shape=shape, name="biased_variance", initializer="zeros", trainable=False, autocast=False
        )
        self.updates_done = self.add_weight(
            shape=(), name="updates_done", initializer="zeros", trainable=False, autocast=False
        )

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None:
            return super().call(inputs, training=training, mask=mask)
        inputs = ops.cast(inputs, "float32")
        mean, variance = ops.moments(inputs, axes=self._reduction_axes)
        n = float(np.prod([inputs.shape[axis] for axis in self._reduction_axes[1:]])) * ops.cast(
            ops.shape(inputs)[0], "float32"
        )
        updates = self.updates_done + 1.0
        debias = 1.0 - ops.power(self.momentum, updates)
        for biased, moving, value in (
            (self.biased_mean, self.moving_mean, mean),
            (self.biased_variance, self.moving_variance, variance * n / (n - 1.0 - self.epsilon)),
        ):
            biased.assign(biased * self.momentum + value * (1.0 - self.momentum))
            moving.assign(biased / debias)
        self.updates_done.assign(updates)
        outputs = ops.batch_normalization(
            inputs, mean, variance, axis=self.axis, offset=self.beta, scale=self.gamma, epsilon=self.epsilon
        )
        return ops.cast(outputs, self.compute_dtype)


def _conv_bn_relu(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def _read_digit(x):
    """The generator reads the digit from its 7x7 bottleneck (dropout, dense 256, softmax over the 10
    classes) and the reading, embedded as 16 more 7x7 channels, joins the bottleneck: the decoder draws
    the digit it read. Trained on the true digits (the recipe's reader_weight), this head alone reads ~98% of the
    masked MNIST test digits, where the generator without it drew ~97.5% that the judge read right."""
    h = layers.Dropout(0.3)(layers.Flatten()(x))
    h = layers.Dense(256, activation="relu")(h)
    reading = layers.Dense(NUM_CLASSES, activation="softmax", name=DIGIT_READING, dtype="float32")(h)
    embedded = layers.Dense(BOTTLENECK_SIDE * BOTTLENECK_SIDE * 16)(reading)
    return layers.Concatenate()([x, layers.Reshape((BOTTLENECK_SIDE, BOTTLENECK_SIDE, 16))(embedded)])


def _chapter_autoencoder(x, bottleneck):
    """The chapter's `img_generator` as it was published: a conv autoencoder, 28 -> 14 -> 7 by average pooling and
    back up by upsampling, BatchNorm (Keras 2's, see Keras2BatchNormalization) in the encoder only, and no 32-filter
    layer before the output."""
    for filters in (32, 64):
        x = layers.Conv2D(filters, 3, padding="same")(x)
        x = layers.Activation("relu")(Keras2BatchNormalization()(x))
        x = layers.AveragePooling2D(2)(x)
    x = layers.Conv2D(128, 3, padding="same")(x)
    x = layers.Activation("relu")(Keras2BatchNormalization()(x))
    x = bottleneck(layers.Conv2D(128, 3, padding="same", activation="relu")(x))
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(layers.UpSampling2D(2)(x))
    return layers.UpSampling2D(2)(x)


def _unet(x, bottleneck):
    """An encoder and decoder with skip connections, so the decoder sees the known pixels at full detail:
    conv-BN-ReLU 32 at 28 pixels, 64 at 14, 128 at 7, the bottleneck's 128, then back up, each level joined by its
    skip. The two full-resolution layers cost most of the time: a 28x28 map is 4x a 14x14 one."""
    skip28 = _conv_bn_relu(x, 32)
    skip14 = _conv_bn_relu(layers.AveragePooling2D(2)(skip28), 64)
    x = _conv_bn_relu(layers.AveragePooling2D(2)(skip14), 128)
    x = bottleneck(_conv_bn_relu(x, 128))
    x = _conv_bn_relu(layers.Concatenate()([layers.UpSampling2D(2)(x), skip14]), 64)
    return _conv_bn_relu(layers.Concatenate()([layers.UpSampling2D(2)(x), skip28]), 32)


def build_generator(kind: str, mask_channel: bool, composite: bool, digit_reader: bool = False) -> keras.Model:
    """`kind` body ("chapter", its autoencoder as published, or "unet"), tanh output.

    mask_channel: the body also sees where the hole is; without it the generator is blind (named
    BLIND_PREFIX...): it gets the damaged image only and never reads the hole channel. composite: the output
    keeps the pixels that are intact and replaces only the damaged ones: with mask_channel, those of the true
    hole; blind, those of its own damage head (layer DAMAGE, a per-pixel probability read from the last
    features), so that pixels it finds intact pass through as they came (VCNet's road to blind inpainting).
    digit_reader: the decoder draws from the generator's own reading of the digit (layer DIGIT_READING, see
    `_read_digit`). The composite weighs each pixel by the damage head's probability; `with_damage_threshold`
    makes it a yes or no at inference.
    """
    inputs = keras.Input(GENERATOR_INPUT_SHAPE, name="masked_and_hole")
    image, hole = inputs[..., :1], inputs[..., 1:]
    body = {"chapter": _chapter_autoencoder, "unet": _unet}[kind]
    x = body(inputs if mask_channel else image, _read_digit if digit_reader else (lambda bottleneck: bottleneck))
    # Outputs in float32 under any dtype policy: the composite must copy the known pixels bit for bit.
    restored = layers.Conv2D(1, 3, padding="same", activation="tanh", name="restored", dtype="float32")(x)
    if composite and not mask_channel:
        # Starts at "intact" (sigmoid(-4) = 0.018) everywhere, as ~95% of the pixels are: the composite passes
        # the image through from the first step, and training opens the head where ink is missing.
        hole = layers.Conv2D(
            1,
            3,
            padding="same",
            activation="sigmoid",
            name=DAMAGE,
            dtype="float32",
            bias_initializer=keras.initializers.Constant(INTACT_LOGIT),
        )(x)
    if composite:
        restored = hole * restored + (1.0 - hole) * image
    return keras.Model(inputs, restored, name=f"{'' if mask_channel else BLIND_PREFIX}{kind}_generator")


def with_damage_threshold(generator: keras.Model, threshold: float) -> keras.Model:
    """The trained `generator` for inference with its composite thresholded (evaluate.damage_threshold): a pixel is
    replaced wholly where the damage head's probability exceeds `threshold` and kept as it came elsewhere, so a
    pixel the head is unsure of is left alone rather than partly repainted. The same weights, and no retraining:
    training stays soft (trained through a hard composite, a002269, the restorer changed more undamaged pixels on
    strokes, not fewer: docs/recipes.md). 0, or a generator without a damage head: `generator` itself."""
    if not threshold or not has_layer(generator, DAMAGE):
        return generator
    # The head's map and the drawn image as a model of their own, called on a new input: the composite's
    # operations then live in the outer model, where their names cannot clash with a loaded generator's.
    parts = keras.Model(generator.input, [generator.get_layer(DAMAGE).output, generator.get_layer("restored").output])
    inputs = keras.Input(GENERATOR_INPUT_SHAPE, name="masked_and_hole")
    probability, drawn = parts(inputs)
    hole = ops.cast(probability > threshold, "float32")
    return keras.Model(inputs, hole * drawn + (1.0 - hole) * inputs[..., :1], name=generator.name)


def build_discriminator(kind: str, class_head: bool = False) -> keras.Model:
    """ "patch": three strided convs with LeakyReLU 0.2 and dropout 0.25, then one probability that the image is real
    per 4x4 grid cell, each seeing a ~15-pixel patch. "chapter": the chapter's `img_discriminator` as published (the
    third conv unstrided, dropout 0.2, one probability for the whole image).

    class_head: a second output, the probabilities of the 10 classes, read from the same features
    (as in AC-GAN), so that the generator can be told which class its restoration reads as."""
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = inputs
    for filters, strides in ((64, 2), (128, 2), (256, 1 if kind == "chapter" else 2)):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same")(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
        x = layers.Dropout(0.2 if kind == "chapter" else 0.25)(x)
    if kind == "patch":
        outputs = layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="p_real", dtype="float32")(x)
    else:
        outputs = layers.Dense(1, activation="sigmoid", name="p_real", dtype="float32")(layers.Flatten()(x))
    if class_head:
        classes = layers.Dense(NUM_CLASSES, activation="softmax", name="p_class", dtype="float32")(layers.Flatten()(x))
        outputs = [outputs, classes]
    return keras.Model(inputs, outputs, name=f"{kind}_discriminator")
