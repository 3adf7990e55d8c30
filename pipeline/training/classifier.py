"""The digit readers and their training: the chapter's CNN (the judge in evaluate, and the reader of the served
chain) and a second reader of another architecture, trained on shifted digits, so that no restoration score rests
on the one model a restorer was tuned beside."""

from __future__ import annotations

import keras
from keras import layers

from pipeline.common.config import ClassifierParams
from pipeline.common.image import IMAGE_SIDE, NUM_CLASSES
from pipeline.images.datasets import to_unit_range
from pipeline.training.seeding import seed_everything


def build_classifier() -> keras.Model:
    """Conv 32 s2 / 64 s2 / 128, dropout 0.2, dense 1024, softmax over the 10 classes."""
    inputs = keras.Input((IMAGE_SIDE, IMAGE_SIDE, 1), name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(1024, activation="relu")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="classifier")


def build_second_reader() -> keras.Model:
    """LeNet's shape rather than the judge's: 5x5 convs 32 / 64 each followed by max pooling, dense 128,
    dropout 0.5. It trains on digits shifted by up to 10% each way (random, new every batch), so it reads a
    digit by its strokes rather than by where the judge expects them."""
    inputs = keras.Input((IMAGE_SIDE, IMAGE_SIDE, 1), name="image")
    x = layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=-1.0)(inputs)
    for filters in (32, 64):
        x = layers.Conv2D(filters, 5, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(layers.Dense(128, activation="relu")(x))
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="second_reader")


def train(c: ClassifierParams, images, labels, build=build_classifier) -> tuple[keras.Model, dict[str, list[float]]]:
    """Seeded, deterministic training on uint8 images; the last `validation_split` of them are held out."""
    seed_everything(c.seed)
    model = build()
    model.compile(
        optimizer=keras.optimizers.Adam(c.lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        to_unit_range(images),
        labels,
        batch_size=c.batch_size,
        epochs=c.epochs,
        validation_split=c.validation_split,
        verbose=2,
    ).history
    return model, history
