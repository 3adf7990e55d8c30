import dataclasses
import hashlib
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, offline_env

from pipeline.common.config import (
    CHAPTER_RECIPE,
    ParamsError,
    SquareDamage,
    StrokeDamage,
    flatten,
    load_params,
    parse_params,
    set_override,
)


def default() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def with_value(section: str, key: str, value) -> dict:
    """The default params with `section.key` (a dotted key for nested ones) set to `value`."""
    raw = default()
    set_override(raw, f"{section}.{key}", value)
    return raw


def test_default_params_damage_a_mixture_restore_blind_and_keep_the_chapter_recipe():
    params = load_params(ROOT / "params.yaml")
    assert params.data.dataset == "mnist"
    families = params.mask.families
    assert set(families) == {"classic", "boxes", "strokes"} and params.mask.fill == -1.0
    assert isinstance(families["strokes"], StrokeDamage) and isinstance(families["boxes"], SquareDamage)
    box = families["classic"]
    assert (box.side_min, box.side_max, box.row_min, box.row_max, box.count_max) == (8, 8, 8, 11, 1)
    assert (params.gan.mask_channel, params.gan.composite, params.gan.fresh_damage) == (False, True, True)
    assert params.gan.mask_weight > 0
    assert flatten(params)["mask.families.strokes.width"] == families["strokes"].width
    assert (params.gan.lr_g, params.gan.lr_d, params.gan.beta1, params.gan.real_label) == (4e-4, 8e-4, 0.5, 0.9)
    classic = dataclasses.replace(params.gan, **CHAPTER_RECIPE)
    assert (classic.batch_size, classic.lr_g, classic.lr_d, classic.recon_weight) == (128, 2e-4, 4e-4, 0.0)
    assert (classic.class_weight, classic.reader_weight, params.gan.reader_weight) == (0.0, 0.0, 1.0)
    assert (params.classifier.epochs, params.classifier.batch_size, params.classifier.validation_split) == (3, 128, 0.2)
    recipe = (params.gan.generator, params.gan.discriminator)
    assert recipe == ("unet", "patch") and params.gan.recon_weight == 100.0
    assert (classic.mask_channel, classic.composite, classic.fresh_damage, classic.mask_weight) == (
        False,
        False,
        False,
        0,
    )
    assert (classic.loop, classic.generator, classic.discriminator, classic.epochs) == (
        "chapter",
        "chapter",
        "chapter",
        5,
    )
    assert params.gan.loop == "compiled"
    assert flatten(params)["gan.generator"] == "unet"


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        (
            "data",
            "dataset",
            "cifar10",
            "data.dataset: unknown dataset 'cifar10'; allowed values are mnist, fashion-mnist",
        ),
        (
            "mask",
            "families.classic.side_max",
            29,
            "mask.families.classic.side_max: must be in mask.families.classic.side_min (8)..28, got 29",
        ),
        (
            "mask",
            "families.boxes.row_min",
            17,
            "mask.families.boxes.row_min: a 12x12 hole (side_max) at row 17 leaves the 28x28 image; allowed is mask.families.boxes.row_min <= 16",
        ),
        (
            "mask",
            "families.boxes.col_max",
            1,
            "mask.families.boxes.col_max: must be >= mask.families.boxes.col_min (2)",
        ),
        ("mask", "families.classic.col_min", -1, "mask.families.classic.col_min: must be >= 0"),
        ("mask", "families.strokes.width", 0, "mask.families.strokes.width: must be in 1..9, got 0"),
        (
            "mask",
            "families.strokes.count_max",
            0,
            "mask.families.strokes.count_max: must be >= mask.families.strokes.count_min (1), got 0",
        ),
        (
            "mask",
            "families.strokes.kind",
            "blob",
            "mask.families.strokes.kind: unknown kind 'blob'; allowed values are square, strokes",
        ),
        (
            "mask",
            "families.strokes.side_min",
            3,
            "mask.families.strokes.side_min: unknown key; allowed keys in 'mask.families.strokes' are kind, weight",
        ),
        ("mask", "families.strokes.weight", -1, "mask.families.strokes.weight: must be >= 0, got -1.0"),
        ("mask", "families", {}, "mask.families: must be a non-empty mapping"),
        ("gan", "mask_weight", -1, "gan.mask_weight: must be >= 0, got -1.0"),
        (
            "gan",
            "mask_channel",
            True,
            "gan.mask_weight: 1.0 trains a damage head, which only a blind restorer that composites has",
        ),
        ("gan", "damage_threshold", 1, "gan.damage_threshold: must be in [0, 1) (0 = the soft composite), got 1.0"),
        ("gan", "fresh_damage", "no", "gan.fresh_damage: must be true or false, got 'no'"),
        ("gan", "lr_g", 0, "gan.lr_g: must be > 0, got 0"),
        ("gan", "lr_d", -1e-4, "gan.lr_d: must be > 0"),
        ("gan", "batch_size", 0, "gan.batch_size: must be > 0, got 0"),
        ("gan", "epochs", -2, "gan.epochs: must be > 0, got -2"),
        ("classifier", "epochs", 0, "classifier.epochs: must be > 0"),
        ("classifier", "validation_split", 1.0, "classifier.validation_split: must be in the open interval (0, 1)"),
        ("classifier", "batch_size", "128", "classifier.batch_size: must be an integer, got '128'"),
        ("gan", "epochs", 2.5, "gan.epochs: must be an integer, got 2.5"),
        (
            "gan",
            "generator",
            "resnet",
            "gan.generator: unknown generator 'resnet'; allowed values are chapter, autoencoder, unet",
        ),
        (
            "gan",
            "discriminator",
            "local",
            "gan.discriminator: unknown discriminator 'local'; allowed values are chapter, global, patch",
        ),
        ("gan", "loop", "keras2", "gan.loop: unknown loop 'keras2'; allowed values are compiled, chapter"),
        ("gan", "composite", "yes", "gan.composite: must be true or false, got 'yes'"),
        ("gan", "class_weight", -1, "gan.class_weight: must be >= 0, got -1"),
        ("gan", "reader_weight", -0.5, "gan.reader_weight: must be >= 0, got -0.5"),
        ("gan", "ema", 1, "gan.ema: must be in [0, 1) (0 = no averaging), got 1.0"),
        (
            "gan",
            "precision",
            "float16",
            "gan.precision: unknown precision 'float16'; allowed values are auto, float32, mixed_bfloat16",
        ),
        (
            "gan",
            "lr_schedule",
            "onecycle",
            "gan.lr_schedule: unknown schedule 'onecycle'; allowed values are constant, cosine",
        ),
        ("gan", "warmup_steps", -1, "gan.warmup_steps: must be >= 0, got -1"),
        ("gan", "adversarial_warmup", 0.5, "gan.adversarial_warmup: must be an integer, got 0.5"),
        ("gan", "width", 0, "gan.width: must be > 0, got 0"),
        ("gan", "encoder_depth", 0, "gan.encoder_depth: must be > 0, got 0"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(section, key, value, message):
    with pytest.raises(ParamsError) as error:
        parse_params(with_value(section, key, value))
    assert message in str(error.value)


def test_a_damage_threshold_needs_the_blind_composite():
    raw = default()
    raw["gan"].update(mask_channel=True, mask_weight=0.0, damage_threshold=0.7)
    with pytest.raises(
        ParamsError,
        match="gan.damage_threshold: 0.7 thresholds a damage head, which only a blind "
        "restorer that composites has .*got mask_channel true, composite true",
    ):
        parse_params(raw)


def test_misspelled_key_lists_the_allowed_ones():
    raw = default()
    raw["gan"]["lr_gen"] = raw["gan"].pop("lr_g")
    with pytest.raises(
        ParamsError, match=r"gan.lr_gen: unknown key; allowed keys in 'gan' are loop, generator, .*lr_g,"
    ):
        parse_params(raw)


def test_missing_key_and_missing_section():
    raw = default()
    del raw["mask"]["seed"]
    with pytest.raises(ParamsError, match="mask.seed: missing key"):
        parse_params(raw)
    raw = default()
    del raw["evaluate"]
    with pytest.raises(ParamsError, match="evaluate: missing section"):
        parse_params(raw)


def test_all_weights_zero_is_refused():
    raw = default()
    for family in raw["mask"]["families"].values():
        family["weight"] = 0
    with pytest.raises(ParamsError, match="mask.families: every weight is 0"):
        parse_params(raw)


def test_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  dataset: [mnist\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)


def test_stage_exits_nonzero_before_touching_outputs(tmp_path):
    """A bad param stops the mask stage before it reads data/raw or rewrites data/masked."""
    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value("mask", "families.classic.side_max", 40)))
    masked = tmp_path / "data/masked"
    masked.mkdir(parents=True)
    (masked / "train.npz").write_bytes(b"previous output")
    before = hashlib.sha256((masked / "train.npz").read_bytes()).hexdigest()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.mask"], cwd=tmp_path, env=offline_env(), capture_output=True, text=True
    )
    assert result.returncode == 2
    assert (
        "error: mask.families.classic.side_max: must be in mask.families.classic.side_min (8)..28, got 40"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert hashlib.sha256((masked / "train.npz").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in masked.iterdir()) == ["train.npz"]


def test_the_chapter_generator_keeps_its_width():
    raw = with_value("gan", "generator", "chapter")
    raw["gan"]["width"] = 16
    with pytest.raises(
        ParamsError, match="gan.width: the chapter's generator has 32 filters at full resolution, got 16"
    ):
        parse_params(raw)


def test_the_chapter_generator_keeps_its_depth():
    raw = with_value("gan", "generator", "chapter")
    raw["gan"]["encoder_depth"] = 2
    with pytest.raises(
        ParamsError, match="gan.encoder_depth: the chapter's generator has one conv at each pooled resolution, got 2"
    ):
        parse_params(raw)
