"""The chapter's loop (gan.recipe chapter): freezing that really freezes, Keras 2's BatchNorm statistics, unpaired
random batches, and a generator that saves and loads with its custom layer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import ROOT, random_masked_batch

from pipeline.common.config import ParamsError, parse_params
from pipeline.common.param_keys import set_override
from pipeline.images.masks import MaskedSplit
from pipeline.training import chapter_loop
from pipeline.training.models import Keras2BatchNormalization, generator_input


def chapter_params(**gan):
    """params.yaml with the chapter's recipe and these dials."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    set_override(raw, "gan.recipe", "chapter")
    params = parse_params(raw)
    return dataclasses.replace(params, gan=dataclasses.replace(params.gan, **gan))


@pytest.fixture(scope="module")
def split():
    masked, holes, clean = random_masked_batch(64)
    return MaskedSplit(clean, np.arange(64) % 10, masked, holes, np.zeros(holes.shape, bool))


def values(variables) -> list[np.ndarray]:
    return [v.numpy() for v in variables]


def changed(before, after) -> list[bool]:
    return [not np.array_equal(b, a) for b, a in zip(before, after)]


@pytest.mark.slow
def test_the_d_step_changes_only_d_and_the_g_step_only_g(split):
    gan = chapter_loop.build(chapter_params(batch_size=16).gan)
    indices = chapter_loop.epoch_batches(64, 16, 1, 0, 0)[0]
    for_d, real, for_g = indices
    g_before, d_before = values(gan.generator.variables), values(gan.discriminator.trainable_variables)

    generated = gan.generator.predict(generator_input(split.masked[for_d]), verbose=0)
    gan.discriminator.trainable = True
    gan.discriminator.train_on_batch(
        np.concatenate([split.clean[real], generated]), np.r_[np.full(16, 0.9), np.zeros(16)]
    )
    assert not any(changed(g_before, values(gan.generator.variables)))  # predict: inference mode, nothing moves
    assert all(changed(d_before, values(gan.discriminator.trainable_variables)))

    gan.discriminator.trainable = False
    d_after_d_step = values(gan.discriminator.trainable_variables)
    g_trainable = values(gan.generator.trainable_variables)
    gan.stacked.train_on_batch(generator_input(split.masked[for_g]), np.ones(16))
    assert not any(changed(d_after_d_step, values(gan.discriminator.trainable_variables)))
    assert all(changed(g_trainable, values(gan.generator.trainable_variables)))

    # And the toggles keep working once both train functions are traced.
    gan.discriminator.trainable = True
    g_now = values(gan.generator.trainable_variables)
    gan.discriminator.train_on_batch(
        np.concatenate([split.clean[real], generated]), np.r_[np.full(16, 0.9), np.zeros(16)]
    )
    assert not any(changed(g_now, values(gan.generator.trainable_variables)))
    gan.discriminator.trainable = False
    d_now = values(gan.discriminator.trainable_variables)
    gan.stacked.train_on_batch(generator_input(split.masked[for_g]), np.ones(16))
    assert not any(changed(d_now, values(gan.discriminator.trainable_variables)))


def test_keras2_batchnorm_moving_statistics_are_the_zero_debiased_average_of_the_unbiased_batch_statistics():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0 * k, 1.0 + k, (6, 2, 2, 3)).astype(np.float32) for k in range(1, 4)]
    layer = Keras2BatchNormalization(momentum=0.9, epsilon=1e-3)
    for x in batches:
        out = layer(x, training=True)
    m, n = 0.9, 6 * 2 * 2
    means = [x.mean(axis=(0, 1, 2)) for x in batches]
    variances = [x.var(axis=(0, 1, 2)) * n / (n - 1 - 1e-3) for x in batches]
    k = len(batches)
    weights = [(1 - m) * m ** (k - 1 - i) for i in range(k)]
    expected_mean = sum(w * v for w, v in zip(weights, means)) / (1 - m**k)
    expected_variance = sum(w * v for w, v in zip(weights, variances)) / (1 - m**k)
    np.testing.assert_allclose(layer.moving_mean.numpy(), expected_mean, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), expected_variance, rtol=1e-5)
    # After one update the statistics are that batch's own, not 1% of the way from mean 0 / variance 1 (Keras 3).
    first = Keras2BatchNormalization()
    first(batches[0], training=True)
    np.testing.assert_allclose(first.moving_mean.numpy(), means[0], rtol=1e-5)
    # Training mode normalises with the batch's own (biased) variance, as Keras 3 does.
    x = batches[-1]
    normalised = (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + 1e-3)
    np.testing.assert_allclose(np.array(out), normalised, rtol=1e-4, atol=1e-4)
    # Inference mode reads the moving statistics.
    inferred = (x - expected_mean) / np.sqrt(expected_variance + 1e-3)
    np.testing.assert_allclose(np.array(layer(x, training=False)), inferred, rtol=1e-4, atol=1e-4)


def test_each_iteration_draws_independent_batches_for_d_and_g_from_seed_and_epoch():
    batches = chapter_loop.epoch_batches(60000, 128, 5, seed=0, epoch=0)
    assert batches.shape == (5, 3, 128)
    for for_d, real, for_g in batches:
        # Unpaired: D's originals are not the images G restored for it, nor those G trains on.
        assert len(set(for_d) & set(real)) < 10 and len(set(for_g) & set(for_d)) < 10
    np.testing.assert_array_equal(batches, chapter_loop.epoch_batches(60000, 128, 5, seed=0, epoch=0))
    assert not np.array_equal(batches, chapter_loop.epoch_batches(60000, 128, 5, seed=0, epoch=1))
    assert not np.array_equal(batches, chapter_loop.epoch_batches(60000, 128, 5, seed=1, epoch=0))


@pytest.mark.slow
def test_the_chapter_loop_trains_saves_and_loads_its_generator(split, tmp_path: Path):
    params = chapter_params(batch_size=16, epochs=2)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((self.model.generator is not None, logs["d_loss"], logs["g_loss"], logs["l1"]))

    gan, seconds = chapter_loop.train(params, split, steps=2, callbacks=[Record()])
    assert len(seen) == 4 and seconds > 0
    assert all(np.isfinite(v) and v > 0 for row in seen for v in row[1:])
    path = tmp_path / "generator.keras"
    gan.generator.save(path)
    inputs = generator_input(split.masked[:8])
    loaded = keras.models.load_model(path)
    assert any(isinstance(layer, Keras2BatchNormalization) for layer in loaded.layers)
    np.testing.assert_array_equal(loaded(inputs, training=False).numpy(), gan.generator(inputs, training=False).numpy())
    # Same params and seed, same generator, bit for bit.
    again, _ = chapter_loop.train(params, split, steps=2)
    np.testing.assert_array_equal(again.generator(inputs).numpy(), gan.generator(inputs).numpy())


def test_the_chapter_recipe_trains_the_chapter_s_networks_in_the_chapter_s_loop(split):
    from pipeline.training.trainer import train

    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs)

    gan, _ = train(chapter_params(batch_size=16, epochs=1, steps_per_epoch=2), split, [Record()])
    assert isinstance(gan, chapter_loop.ChapterGAN) and gan.stacked.name == "chapter_gan"  # the loop's three models
    assert gan.generator.name == "blind_chapter_generator" and gan.discriminator.name == "chapter_discriminator"
    assert any(isinstance(layer, Keras2BatchNormalization) for layer in gan.generator.layers)
    assert len(seen) == 2 and all(log["class_loss"] == log["reader_loss"] == log["damage_loss"] == 0 for log in seen)


def test_the_chapter_recipe_refuses_another_value_of_a_dial_it_fixes():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["gan"]["recipe"] = "chapter"
    raw["gan"]["recon_weight"] = 100.0
    with pytest.raises(ParamsError, match=r"^gan.recon_weight: the chapter recipe fixes it at 0.0, got 100.0"):
        parse_params(raw)
    raw["gan"]["recon_weight"] = 0
    assert parse_params(raw).gan.recon_weight == 0
