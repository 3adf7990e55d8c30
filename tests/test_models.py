import keras
import numpy as np
import pytest

from pipeline.gan import RestorationGAN
from pipeline.models import build_classic_generator, build_classifier, build_discriminator


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    clean = rng.uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
    masked = clean.copy()
    masked[:, 8:16, 8:16] = -1.0
    return masked, clean


def test_output_shapes_and_ranges(batch):
    masked, _ = batch
    probabilities = build_classifier()(masked).numpy()
    assert probabilities.shape == (16, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    restored = build_classic_generator()(masked).numpy()
    assert restored.shape == (16, 28, 28, 1) and restored.min() >= -1 and restored.max() <= 1
    p_real = build_discriminator()(masked).numpy()
    assert p_real.shape == (16, 1) and ((0 <= p_real) & (p_real <= 1)).all()


def make_gan(recon_weight: float) -> RestorationGAN:
    keras.utils.set_random_seed(0)
    gan = RestorationGAN(build_classic_generator(), build_discriminator(), 0.9, recon_weight)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(4e-4, beta_1=0.5))
    return gan


def test_recon_weight_adds_weighted_l1_to_the_generator_loss(batch):
    masked, clean = batch
    d0, g0, l1_0 = (float(v) for v in make_gan(0.0).losses_for(masked, clean, training=False))
    d1, g1, l1_1 = (float(v) for v in make_gan(10.0).losses_for(masked, clean, training=False))
    assert l1_0 == pytest.approx(l1_1) and d0 == pytest.approx(d1)
    assert g1 == pytest.approx(g0 + 10.0 * l1_0, rel=1e-5)


def test_one_train_step_updates_both_networks(batch):
    gan = make_gan(0.0)
    generator_before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    discriminator_before = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    logs = gan.train_step(batch)
    assert all(np.isfinite(float(logs[k])) for k in ("d_loss", "g_loss", "l1"))
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(generator_before, gan.generator.trainable_weights))
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(discriminator_before, gan.discriminator.trainable_weights))
