import hashlib
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, offline_env

from pipeline.common.config import ParamsError, SquareDamage, StrokeDamage, load_params, parse_params
from pipeline.common.param_keys import flatten, set_override
from pipeline.training.recipes import BETA1, REAL_LABEL, RECIPES


def default() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def with_value(section: str, key: str, value) -> dict:
    """The default params with `section.key` (a dotted key for nested ones) set to `value`."""
    raw = default()
    set_override(raw, f"{section}.{key}", value)
    return raw


def test_default_params_damage_a_mixture_and_restore_blind():
    params = load_params(ROOT / "params.yaml")
    assert params.data.dataset == "mnist"
    families = params.mask.families
    assert set(families) == {"classic", "boxes", "strokes"} and params.mask.fill == -1.0
    assert isinstance(families["strokes"], StrokeDamage) and isinstance(families["boxes"], SquareDamage)
    box = families["classic"]
    assert (box.side_min, box.side_max, box.row_min, box.row_max, box.count_max) == (8, 8, 8, 11, 1)
    assert flatten(params)["mask.families.strokes.width"] == families["strokes"].width
    assert (params.classifier.epochs, params.classifier.batch_size, params.classifier.validation_split) == (3, 128, 0.2)
    assert params.gan.recipe == "blind" and flatten(params)["gan.recipe"] == "blind"
    assert params.evaluate.damage_threshold == 0.0
    assert len(yaml.safe_load((ROOT / "params.yaml").read_text())["gan"]) <= 12


# Each recipe as docs/recipes.md documents it: what it fixes, and its values of the dials params.yaml leaves null.
DOCUMENTED = {
    "blind": dict(
        loop="compiled", generator="unet", discriminator="patch", mask_channel=False, composite=True, mask_weight=1.0,
        class_weight=1.0, reader_weight=1.0, fresh_damage=True,
        dials=dict(epochs=3, batch_size=64, lr_g=4e-4, lr_d=8e-4, recon_weight=100.0, ema=0.99, reader_warmup=0,
                   precision="auto"),
    ),
    "given_hole": dict(
        loop="compiled", generator="unet", discriminator="patch", mask_channel=True, composite=True, mask_weight=0.0,
        class_weight=1.0, reader_weight=1.0, fresh_damage=True,
        dials=dict(epochs=3, batch_size=64, lr_g=4e-4, lr_d=8e-4, recon_weight=100.0, ema=0.99, reader_warmup=0,
                   precision="auto"),
    ),
    "chapter": dict(
        loop="chapter", generator="chapter", discriminator="chapter", mask_channel=False, composite=False,
        mask_weight=0.0, class_weight=0.0, reader_weight=0.0, fresh_damage=False,
        dials=dict(epochs=5, batch_size=128, lr_g=2e-4, lr_d=4e-4, recon_weight=0.0, ema=0.0, reader_warmup=0,
                   precision="float32"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_recipe_resolves_to_its_documented_values(name):
    *fixed, dials = DOCUMENTED[name].items()
    recipe = RECIPES[name]
    assert {key: getattr(recipe, key) for key, _ in fixed} == dict(fixed)
    gan = parse_params(with_value("gan", "recipe", name)).gan
    assert {key: getattr(gan, key) for key in dials[1]} == dials[1]
    assert (BETA1, REAL_LABEL, gan.seed, gan.steps_per_epoch) == (0.5, 0.9, 0, None)


def test_a_dial_set_in_params_yaml_overrides_the_recipe_s_value():
    raw = with_value("gan", "recipe", "chapter")
    raw["gan"].update(epochs=2, batch_size=64)
    gan = parse_params(raw).gan
    assert (gan.epochs, gan.batch_size, gan.lr_g) == (2, 64, 2e-4)


@pytest.mark.parametrize(
    "key, value, fixed", [("recon_weight", 100.0, "0.0"), ("ema", 0.99, "0.0"), ("reader_warmup", 400, "0")]
)
def test_a_dial_a_recipe_fixes_is_refused_at_another_value_with_its_name(key, value, fixed):
    raw = with_value("gan", "recipe", "chapter")
    raw["gan"][key] = value
    with pytest.raises(ParamsError, match=rf"^gan\.{key}: the chapter recipe fixes it at {fixed}, got {value}"):
        parse_params(raw)


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        (
            "data",
            "dataset",
            "cifar10",
            "data.dataset: unknown value; allowed values are mnist, fashion-mnist, got 'cifar10'",
        ),
        ("mask", "families.classic.side_max", 29, "mask.families.classic.side_max: must be <= 28, got 29"),
        (
            "mask",
            "families.classic.side_min",
            9,
            "mask.families.classic.side_max: must be >= mask.families.classic.side_min (9), got 8",
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
        ("mask", "families.strokes.width", 0, "mask.families.strokes.width: must be >= 1, got 0"),
        ("mask", "families.strokes.width", 10, "mask.families.strokes.width: must be <= 9, got 10"),
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
            "mask.families.strokes.kind: unknown kind; allowed values are square, strokes, got 'blob'",
        ),
        (
            "mask",
            "families.strokes.side_min",
            3,
            "mask.families.strokes.side_min: unknown key; allowed keys in 'mask.families.strokes' are kind, weight",
        ),
        ("mask", "families.strokes.weight", -1, "mask.families.strokes.weight: must be >= 0.0, got -1"),
        ("mask", "families", {}, "mask.families: must be a non-empty mapping"),
        ("mask", "fill", 2, "mask.fill: must be <= 1.0, got 2"),
        (
            "gan",
            "recipe",
            "pix2pix",
            "gan.recipe: unknown value; allowed values are blind, given_hole, chapter, got 'pix2pix'",
        ),
        ("gan", "lr_g", 0, "gan.lr_g: must be > 0.0, got 0"),
        ("gan", "lr_d", -1e-4, "gan.lr_d: must be > 0"),
        ("gan", "batch_size", 0, "gan.batch_size: must be > 0, got 0"),
        ("gan", "epochs", -2, "gan.epochs: must be > 0, got -2"),
        ("gan", "steps_per_epoch", 0, "gan.steps_per_epoch: must be > 0, got 0"),
        ("gan", "recon_weight", -1, "gan.recon_weight: must be >= 0.0, got -1"),
        ("gan", "reader_warmup", -1, "gan.reader_warmup: must be >= 0, got -1"),
        ("classifier", "epochs", 0, "classifier.epochs: must be > 0"),
        ("classifier", "validation_split", 1.0, "classifier.validation_split: must be < 1.0, got 1.0"),
        ("classifier", "batch_size", "128", "classifier.batch_size: must be an integer, got '128'"),
        ("gan", "epochs", 2.5, "gan.epochs: must be an integer, got 2.5"),
        ("gan", "seed", True, "gan.seed: must be an integer, got True"),
        ("gan", "lr_g", "fast", "gan.lr_g: must be a number, got 'fast'"),
        ("gan", "ema", 1, "gan.ema: must be < 1.0, got 1"),
        (
            "gan",
            "precision",
            "float16",
            "gan.precision: unknown value; allowed values are auto, float32, mixed_bfloat16, got 'float16'",
        ),
        ("evaluate", "damage_threshold", 1, "evaluate.damage_threshold: must be < 1.0, got 1"),
        ("tracking", "experiment", " ", "tracking.experiment: must be a non-empty name, got ' '"),
        ("gan", "lr_schedule", "cosine", "gan.lr_schedule: unknown key; allowed keys in 'gan' are recipe, epochs"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(section, key, value, message):
    with pytest.raises(ParamsError) as error:
        parse_params(with_value(section, key, value))
    assert message in str(error.value)


def test_a_damage_threshold_needs_the_blind_recipe_s_damage_head():
    raw = with_value("gan", "recipe", "given_hole")
    raw["evaluate"]["damage_threshold"] = 0.7
    with pytest.raises(
        ParamsError,
        match="evaluate.damage_threshold: 0.7 thresholds a damage head, which only a blind "
        "restorer that composites has .*got gan.recipe given_hole",
    ):
        parse_params(raw)


def test_misspelled_key_lists_the_allowed_ones():
    raw = default()
    raw["gan"]["lr_gen"] = raw["gan"].pop("lr_g")
    with pytest.raises(ParamsError, match=r"gan.lr_gen: unknown key; allowed keys in 'gan' are recipe, .*lr_g,"):
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
    assert "error: mask.families.classic.side_max: must be <= 28, got 40" in result.stderr
    assert "Traceback" not in result.stderr
    assert hashlib.sha256((masked / "train.npz").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in masked.iterdir()) == ["train.npz"]
