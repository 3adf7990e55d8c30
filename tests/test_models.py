import keras
import numpy as np
import pytest
import yaml
from conftest import ROOT, random_masked_batch

from pipeline.common.config import load_params, parse_params
from pipeline.common.param_keys import set_override
from pipeline.training.classifier import build_classifier
from pipeline.training.gan import RestorationGAN
from pipeline.training.models import (
    DAMAGE,
    DIGIT_READING,
    build_discriminator,
    build_generator,
    digit_reader,
    generator_input,
    has_layer,
    is_blind,
    with_damage_threshold,
)


def recipe_params(recipe: str):
    """params.yaml with gan.recipe `recipe`."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    set_override(raw, "gan.recipe", recipe)
    return parse_params(raw)


@pytest.fixture(scope="module")
def batch():
    return random_masked_batch(16)


def test_output_shapes_and_ranges(batch):
    masked, holes, _ = batch
    probabilities = build_classifier()(masked).numpy()
    assert probabilities.shape == (16, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    for kind in ("chapter", "unet"):
        restored = build_generator(kind, True, False)(generator_input(masked, holes)).numpy()
        assert restored.shape == (16, 28, 28, 1) and restored.min() >= -1 and restored.max() <= 1
    assert build_discriminator("chapter")(masked).shape == (16, 1)
    patch = build_discriminator("patch")(masked).numpy()
    assert patch.shape == (16, 4, 4, 1) and ((patch >= 0) & (patch <= 1)).all()


def test_switching_the_recipe_changes_the_model_built():
    classic = build_generator("chapter", mask_channel=False, composite=False)
    unet = build_generator("unet", mask_channel=True, composite=True)
    assert not any(isinstance(layer, keras.layers.Concatenate) for layer in classic.layers)
    assert sum(isinstance(layer, keras.layers.Concatenate) for layer in unet.layers) == 2  # the skips
    first_conv = next(layer for layer in unet.layers if isinstance(layer, keras.layers.Conv2D))
    assert first_conv.kernel.shape[2] == 2  # image + hole channel
    first_conv = next(layer for layer in classic.layers if isinstance(layer, keras.layers.Conv2D))
    assert first_conv.kernel.shape[2] == 1  # the image alone
    assert classic.count_params() != unet.count_params()


def test_composite_keeps_every_known_pixel_exactly(batch):
    masked, holes, _ = batch
    restored = build_generator("unet", True, composite=True)(generator_input(masked, holes)).numpy()
    np.testing.assert_array_equal(restored[~holes], masked[~holes])
    assert not np.allclose(restored[holes], masked[holes])  # the hole is filled by the network
    raw = build_generator("unet", True, composite=False)(generator_input(masked, holes)).numpy()
    assert not np.array_equal(raw[~holes], masked[~holes])


def test_the_mask_channel_is_used(batch):
    masked, holes, _ = batch
    keras.utils.set_random_seed(0)
    generator = build_generator("unet", mask_channel=True, composite=False)
    other_holes = np.roll(holes, 6, axis=2)  # same pixels in, the hole said to be elsewhere
    a = generator(generator_input(masked, holes)).numpy()
    b = generator(generator_input(masked, other_holes)).numpy()
    assert not np.allclose(a, b)
    blind = build_generator("unet", mask_channel=False, composite=False)
    np.testing.assert_array_equal(
        blind(generator_input(masked, holes)).numpy(), blind(generator_input(masked, other_holes)).numpy()
    )


LABELS = np.arange(16) % 10


def make_gan(
    recon_weight: float, generator=None, class_weight: float = 0.0, reader_weight: float = 0.0
) -> RestorationGAN:
    keras.utils.set_random_seed(0)
    generator = generator or build_generator("chapter", False, False, digit_reader=reader_weight > 0)
    discriminator = build_discriminator("chapter", class_head=class_weight > 0)
    gan = RestorationGAN(generator, discriminator, 0.9, recon_weight, class_weight, reader_weight)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(4e-4, beta_1=0.5))
    return gan


def test_recon_weight_adds_weighted_l1_to_the_generator_loss(batch):
    masked, holes, clean = batch
    inputs = generator_input(masked, holes)
    d0, g0, l1_0, *_ = (float(v) for v in make_gan(0.0).losses_for(inputs, clean, LABELS, holes, training=False))
    d1, g1, l1_1, *_ = (float(v) for v in make_gan(10.0).losses_for(inputs, clean, LABELS, holes, training=False))
    assert l1_0 > 0 and l1_0 == pytest.approx(l1_1) and d0 == pytest.approx(d1)
    assert g1 == pytest.approx(g0 + 10.0 * l1_0, rel=1e-5)


def test_class_weight_adds_the_cross_entropy_of_the_true_digit_in_d_s_reading_of_the_restoration(batch):
    masked, holes, clean = batch
    inputs = generator_input(masked, holes)
    gan = make_gan(10.0, class_weight=2.0)
    d, g, l1, class_loss, *_ = (float(v) for v in gan.losses_for(inputs, clean, LABELS, holes, training=False))
    p_real, classes = gan.discriminator(np.concatenate([clean, gan.generator(inputs).numpy()]))
    classes = classes.numpy()
    expected = -np.mean(np.log(classes[16:][np.arange(16), LABELS]))
    assert class_loss == pytest.approx(expected, rel=1e-4)
    adversarial = -np.mean(np.log(p_real.numpy()[16:]))
    assert g == pytest.approx(adversarial + 10.0 * l1 + 2.0 * class_loss, rel=1e-4)
    real_class_loss = -np.mean(np.log(classes[:16][np.arange(16), LABELS]))
    assert d > real_class_loss  # D also pays for misreading the real digits
    _, _, _, off, *_ = make_gan(10.0).losses_for(inputs, clean, LABELS, holes, training=False)
    assert float(off) == 0.0 and len(make_gan(10.0).discriminator.outputs) == 1


@pytest.mark.slow
def test_training_with_the_class_term_teaches_d_to_read_the_real_digits(batch):
    _, holes, clean = batch
    gan = make_gan(10.0, class_weight=1.0)
    inputs = generator_input(np.where(holes[..., None], -1.0, clean).astype(np.float32), holes)
    first = float(gan.train_step((inputs, (clean, LABELS, holes)))["class_loss"])
    real_before = float(
        keras.losses.sparse_categorical_crossentropy(LABELS, gan.discriminator(clean)[1]).numpy().mean()
    )
    for _ in range(30):
        gan.train_step((inputs, (clean, LABELS, holes)))
    real_after = float(keras.losses.sparse_categorical_crossentropy(LABELS, gan.discriminator(clean)[1]).numpy().mean())
    assert first > 0 and real_after < 0.5 * real_before


def test_reader_weight_adds_the_cross_entropy_of_the_true_digit_in_g_s_own_reading(batch):
    masked, holes, clean = batch
    inputs = generator_input(masked, holes)
    gan = make_gan(10.0, reader_weight=2.0)
    d, g, l1, class_loss, reader_loss, _ = (
        float(v) for v in gan.losses_for(inputs, clean, LABELS, holes, training=False)
    )
    restored, reading = (t.numpy() for t in gan.generator_outputs(inputs))
    np.testing.assert_array_equal(restored, gan.generator(inputs).numpy())  # the same generator, two outputs
    expected = -np.mean(np.log(reading[np.arange(16), LABELS]))
    assert reader_loss == pytest.approx(expected, rel=1e-4) and class_loss == 0.0
    adversarial = -np.mean(np.log(gan.discriminator(restored).numpy()))
    assert g == pytest.approx(adversarial + 10.0 * l1 + 2.0 * reader_loss, rel=1e-4)
    without = make_gan(10.0)
    assert float(without.losses_for(inputs, clean, LABELS, holes, training=False)[4]) == 0.0
    assert DIGIT_READING not in [layer.name for layer in without.generator.layers]


def force_reading(generator, digit: int) -> None:
    """Make the generator's digit head read `digit` whatever the image: no kernel, a large bias on that class."""
    head = generator.get_layer(DIGIT_READING)
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.where(np.arange(10) == digit, 20.0, 0.0).astype(np.float32)])


def test_the_decoder_draws_from_the_generator_s_reading_of_the_digit(batch):
    masked, holes, _ = batch
    keras.utils.set_random_seed(0)
    generator = build_generator("unet", True, composite=True, digit_reader=True)

    def restore_reading_as(digit: int) -> np.ndarray:
        force_reading(generator, digit)
        return generator(generator_input(masked, holes)).numpy()

    three, seven = restore_reading_as(3), restore_reading_as(7)
    np.testing.assert_array_equal(three[~holes], seven[~holes])  # known pixels kept either way
    assert np.abs(three[holes] - seven[holes]).mean() > 1e-3  # the hole follows the reading


def test_evaluate_reads_the_digit_the_generator_read_and_nothing_without_a_reader(batch):
    from pipeline.scoring.inference import generator_reading

    masked, holes, _ = batch
    assert generator_reading(build_generator("unet", True, True), masked, holes) is None
    generator = build_generator("unet", True, True, digit_reader=True)
    force_reading(generator, 4)
    np.testing.assert_array_equal(generator_reading(generator, masked, holes), np.full(16, 4))


@pytest.mark.slow
def test_training_with_the_reader_teaches_g_to_read_the_digit(batch):
    masked, holes, clean = batch
    generator = build_generator("unet", True, composite=True, digit_reader=True)
    gan = make_gan(10.0, generator=generator, reader_weight=1.0)
    inputs = generator_input(masked, holes)
    first = float(gan.train_step((inputs, (clean, LABELS, holes)))["reader_loss"])
    for _ in range(30):
        last = float(gan.train_step((inputs, (clean, LABELS, holes)))["reader_loss"])
    assert last < 0.5 * first


def test_l1_is_zero_when_the_generator_reproduces_the_target(batch):
    masked, holes, clean = batch
    image_only = keras.Input((28, 28, 2))
    identity = keras.Model(image_only, image_only[..., :1])  # returns channel 0 unchanged
    inputs = generator_input(clean, holes)  # the "masked" image is the target itself
    _, _, l1, *_ = make_gan(100.0, identity).losses_for(inputs, clean, LABELS, holes, training=False)
    assert float(l1) == 0.0


def test_one_train_step_updates_both_networks(batch):
    masked, holes, clean = batch
    gan = make_gan(0.0)
    generator_before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    discriminator_before = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    logs = gan.train_step((generator_input(masked, holes), (clean, LABELS, holes)))
    assert all(np.isfinite(float(logs[k])) for k in ("d_loss", "g_loss", "l1"))
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(generator_before, gan.generator.trainable_weights))
    assert any(
        not np.array_equal(a, b.numpy()) for a, b in zip(discriminator_before, gan.discriminator.trainable_weights)
    )


def test_mixed_bfloat16_computes_in_bfloat16_keeps_known_pixels_exactly_and_leaves_the_global_policy(batch):
    import dataclasses

    from pipeline.training.trainer import build_gan

    masked, holes, _ = batch
    g = recipe_params("given_hole").gan
    gan = build_gan(dataclasses.replace(g, precision="mixed_bfloat16"))
    assert keras.config.dtype_policy().name == "float32"

    def first_conv(gan):
        return next(layer for layer in gan.generator.layers if isinstance(layer, keras.layers.Conv2D))

    assert first_conv(gan).compute_dtype == "bfloat16" and first_conv(gan).kernel.dtype == "float32"
    restored = gan.generator(generator_input(masked, holes)).numpy()
    assert restored.dtype == np.float32
    np.testing.assert_array_equal(restored[~holes], masked[~holes])
    assert first_conv(build_gan(dataclasses.replace(g, precision="float32"))).compute_dtype == "float32"


def test_a_non_finite_loss_stops_training_and_names_the_iteration():
    from pipeline.common.errors import PipelineError
    from pipeline.training.progress import LossProgress

    progress = LossProgress(epochs=2, steps=10)
    progress.on_epoch_begin(1)
    quiet = {"l1": 0.1, "class_loss": 0.0, "reader_loss": 0.0, "damage_loss": 0.0}
    progress.on_train_batch_end(0, {"d_loss": 0.7, "g_loss": 3.0, **quiet})
    with pytest.raises(PipelineError, match=r"diverged at iteration 13 \(epoch 2, batch 3\): d_loss=0.6, g_loss=nan"):
        progress.on_train_batch_end(3, {"d_loss": 0.6, "g_loss": float("nan"), **quiet})


class GeneratorWeightsPerIteration(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append([w.numpy().copy() for w in self.model.generator.trainable_weights])


@pytest.mark.slow
def test_ema_saves_the_moving_average_of_the_generator_weights_and_leaves_training_unchanged(batch):
    import dataclasses

    from pipeline.images.masks import MaskedSplit
    from pipeline.training.trainer import train

    masked, holes, clean = batch
    params = load_params(ROOT / "params.yaml")

    def run(ema: float):
        gan_params = dataclasses.replace(params.gan, ema=ema, epochs=1, steps_per_epoch=4, batch_size=8)
        record = GeneratorWeightsPerIteration()
        data = MaskedSplit(clean, LABELS, masked, holes, holes)
        gan, _ = train(dataclasses.replace(params, gan=gan_params), data, [record])
        return [w.numpy() for w in gan.generator.trainable_weights], record.seen

    last, seen_without = run(0.0)
    averaged, seen_with = run(0.5)
    assert len(seen_with) == 4
    for a, b in zip(seen_without[-1], seen_with[-1]):
        np.testing.assert_array_equal(a, b)  # the average does not feed back into training
    for a, b in zip(last, seen_without[-1]):
        np.testing.assert_array_equal(a, b)  # ema 0: the last weights
    expected = seen_with[0]  # the average starts at the weights after the first iteration
    for weights in seen_with[1:]:
        expected = [0.5 * e + 0.5 * w for e, w in zip(expected, weights)]
    for a, e in zip(averaged, expected):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7)
    assert not all(np.array_equal(a, b) for a, b in zip(averaged, last))


@pytest.mark.slow
def test_the_reader_warmup_trains_the_encoder_and_reading_head_alone(batch):
    import dataclasses

    from pipeline.images.masks import MaskedSplit
    from pipeline.training.batches import training_batches
    from pipeline.training.trainer import build_gan, warm_up_reader

    masked, holes, clean = batch
    params = load_params(ROOT / "params.yaml")
    g = dataclasses.replace(params.gan, reader_warmup=3, steps_per_epoch=2, batch_size=8)
    params = dataclasses.replace(params, gan=g)
    gan = build_gan(g)
    generator, discriminator = gan.generator, gan.discriminator
    before = [w.numpy().copy() for w in generator.weights]
    d_before = [w.numpy().copy() for w in discriminator.weights]
    data = MaskedSplit(clean, LABELS, masked, holes, holes)
    warm_up_reader(generator, training_batches(data, params, 2, range(2)), g)
    weights = generator.weights
    changed = {i for i, (a, w) in enumerate(zip(before, weights)) if not np.array_equal(a, w.numpy())}
    reader_weights = digit_reader(generator).weights
    under_the_reading = {i for i, w in enumerate(weights) if any(w is r for r in reader_weights)}
    # The reading head and the encoder under it learnt; the decoder, the drawing, the damage head and D did not.
    assert changed and changed <= under_the_reading
    assert any(weights[i].path.startswith(DIGIT_READING + "/") for i in changed)
    assert not any(weights[i].path.startswith(("restored/", DAMAGE + "/")) for i in under_the_reading)
    for a, w in zip(d_before, discriminator.weights):
        np.testing.assert_array_equal(a, w.numpy())


def test_the_blind_generator_never_reads_the_hole_channel_and_names_itself_blind(batch):
    masked, holes, _ = batch
    keras.utils.set_random_seed(0)
    blind = build_generator("unet", mask_channel=False, composite=True, digit_reader=True)
    assert is_blind(blind) and not is_blind(build_generator("unet", True, True))
    assert has_layer(blind, DAMAGE) and not has_layer(build_generator("unet", False, False), DAMAGE)
    told = blind(generator_input(masked, holes)).numpy()
    for other in (np.roll(holes, 6, axis=2), np.zeros_like(holes), np.ones_like(holes)):
        np.testing.assert_array_equal(told, blind(generator_input(masked, other)).numpy())


def test_the_damage_head_pays_the_cross_entropy_of_the_ink_that_was_lost(batch):
    masked, holes, clean = batch
    clean = np.where(np.arange(28)[None, :, None, None] < 12, -1.0, clean).astype(np.float32)  # paper above row 12
    masked = np.where(holes[..., None], -1.0, clean).astype(np.float32)
    inputs = generator_input(masked)
    generator = build_generator("unet", mask_channel=False, composite=True)
    gan = RestorationGAN(generator, build_discriminator("chapter"), 0.9, 10.0, mask_weight=3.0)
    d, g, l1, _, _, damage_loss = (float(v) for v in gan.losses_for(inputs, clean, LABELS, holes, training=False))
    restored, damage = (t.numpy() for t in gan.generator_outputs(inputs))
    lost = holes & (clean[..., 0] != masked[..., 0])
    assert lost.sum() < holes.sum()  # the hole's rows on paper lost nothing
    p = np.clip(damage[..., 0], 1e-7, 1 - 1e-7)
    expected = -np.mean(np.where(lost, np.log(p), np.log(1 - p)))
    assert damage_loss == pytest.approx(expected, rel=1e-3)
    adversarial = -np.mean(np.log(gan.discriminator(restored).numpy()))
    assert g == pytest.approx(adversarial + 10.0 * l1 + 3.0 * damage_loss, rel=1e-4)


@pytest.mark.slow
def test_a_tiny_trained_blind_restorer_finds_the_damage_and_leaves_intact_pixels_alone():
    """Trained for 150 steps, after 200 of its reader alone, on 1024 real digits with fresh damage of the default
    families: the damage head's composite keeps the undamaged pixels (the same blind U-Net without it repainted
    0.22-0.60% of them, docs/recipes.md), and the head already opens more where ink was lost than where it was not."""
    import dataclasses

    from conftest import mirror_dir

    from pipeline.images.datasets import load_split, to_unit_range
    from pipeline.images.masks import MaskedSplit, apply_masks, draw_damage, skeletons
    from pipeline.scoring.damage_table import CHANGED, restore

    params = load_params(ROOT / "params.yaml")
    images, labels = load_split(mirror_dir() / "mnist", "train", 1024)
    clean, skeleton = to_unit_range(images), skeletons(images)
    holes = draw_damage(skeleton, params.mask.families, np.random.default_rng(0))
    data = MaskedSplit(clean, labels, apply_masks(clean, holes, -1.0), holes, skeleton)
    test_images, _ = load_split(mirror_dir() / "mnist", "test", 256)
    test_holes = draw_damage(skeletons(test_images), params.mask.families, np.random.default_rng(1))
    test_clean = to_unit_range(test_images)
    test_masked = apply_masks(test_clean, test_holes, -1.0)

    from pipeline.training.trainer import train

    # A short run, so the reader is warmed up first (gan.reader_warmup, docs/recipes.md); the default's precision.
    g = dataclasses.replace(params.gan, epochs=1, steps_per_epoch=150, batch_size=32, reader_warmup=200)
    gan = train(dataclasses.replace(params, gan=g), data)[0]
    assert gan.reader_warmup_seconds > 0.0
    generator = gan.generator
    restored = restore(generator, test_masked, test_holes)
    assert float((np.abs(restored - test_clean)[~test_holes[..., None]] / 2 > CHANGED).mean()) < 0.001
    found = keras.Model(generator.input, generator.get_layer(DAMAGE).output)(generator_input(test_masked)).numpy()[
        ..., 0
    ]
    lost = test_holes & (test_images > 0)
    assert found[lost].mean() > 2 * found[~test_holes].mean()


def test_a_damage_threshold_replaces_a_pixel_wholly_or_not_at_all_at_inference_and_trains_soft(batch, tmp_path):
    masked, holes, _ = batch
    inputs = generator_input(masked)
    generator = build_generator("unet", False, True)
    generator.get_layer(DAMAGE).bias.assign([0.0])  # the head unsure everywhere: probabilities on both sides of 0.5
    parts = keras.Model(generator.input, [generator.get_layer(DAMAGE).output, generator.get_layer("restored").output])
    probability, raw = (x.numpy() for x in parts(inputs))
    found = probability > 0.5
    assert 0 < found.mean() < 1
    thresholded = with_damage_threshold(generator, 0.5)
    assert is_blind(thresholded) and thresholded.count_params() == generator.count_params()  # the same weights
    restored = thresholded(inputs).numpy()
    np.testing.assert_array_equal(restored[~found], masked[~found])  # kept as it came, not partly repainted
    np.testing.assert_allclose(restored[found], raw[found], atol=1e-6)  # replaced wholly
    p, drawn = (x.numpy() for x in parts(inputs))
    np.testing.assert_allclose(generator(inputs).numpy(), p * drawn + (1 - p) * masked, atol=1e-5)  # soft without
    assert with_damage_threshold(generator, 0.0) is generator
    generator.save(tmp_path / "g.keras")  # evaluate and the served chain threshold the generator train_gan saved,
    keras.backend.clear_session()  # loaded in a process of their own: operation names counted from scratch
    loaded = with_damage_threshold(keras.models.load_model(tmp_path / "g.keras"), 0.5)
    np.testing.assert_array_equal(loaded(inputs).numpy(), restored)
    given_hole = build_generator("unet", True, True)
    assert with_damage_threshold(given_hole, 0.5) is given_hole  # no damage head: nothing to threshold
