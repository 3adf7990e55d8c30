"""Typed, validated view of params.yaml.

Every stage calls `load_params()` first, so a typo or an impossible value stops
the pipeline with a message naming the key before any data is read or any
output is touched.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.common.errors import PipelineError

DATASETS = ("mnist", "fashion-mnist")
GENERATORS = ("chapter", "autoencoder", "unet")
DISCRIMINATORS = ("chapter", "global", "patch")
LOOPS = ("compiled", "chapter")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")  # auto: pipeline/training/precision.py
LR_SCHEDULES = ("constant", "cosine")
CHAPTER_WIDTH = 32  # the filters of the chapter's full-resolution layers
# What the chapter loop leaves out, and the only values it accepts for them (the loop would ignore any other).
CHAPTER_LOOP_FIXED = dict(
    generator="chapter",
    discriminator="chapter",
    mask_channel=False,
    composite=False,
    mask_weight=0.0,
    damage_threshold=0.0,
    fresh_damage=False,
    recon_weight=0.0,
    class_weight=0.0,
    reader_weight=0.0,
    ema=0.0,
    lr_schedule="constant",
    warmup_steps=0,
    adversarial_warmup=0,
    width=CHAPTER_WIDTH,
    encoder_depth=1,
)
# The chapter's training as it was published, as overrides of the gan section: its networks, its loop
# (pipeline/training/chapter_loop.py), its optimisers, batch and epochs, the adversarial loss alone, the mask stage's
# damage. Trained on the chapter's box alone (mask.families.boxes / strokes at weight 0) it reproduces the chapter.
CHAPTER_RECIPE = dict(
    CHAPTER_LOOP_FIXED,
    loop="chapter",
    epochs=5,
    batch_size=128,
    steps_per_epoch=None,
    lr_g=2e-4,
    lr_d=4e-4,
    beta1=0.5,
    real_label=0.9,
    precision="float32",
)
GIVEN_HOLE_RECIPE = dict(mask_channel=True, composite=True, mask_weight=0.0)
IMAGE_SIDE = 28
NUM_CLASSES = 10  # digits, or Fashion-MNIST's 10 kinds of clothing


class ParamsError(PipelineError, ValueError):
    """params.yaml is missing, malformed or holds a value the pipeline cannot use."""


@dataclass(frozen=True)
class DataParams:
    dataset: str
    max_train: int | None
    max_test: int | None


@dataclass(frozen=True)
class SquareDamage:
    """`count_min..count_max` square holes of side `side_min..side_max` (uniform integers, per hole), each
    top-left corner uniform in [row_min, min(row_max, 28 - side)] x [col_min, min(col_max, 28 - side)]."""

    kind: str
    weight: float
    side_min: int
    side_max: int
    count_min: int
    count_max: int
    row_min: int
    row_max: int
    col_min: int
    col_max: int


@dataclass(frozen=True)
class StrokeDamage:
    """`count_min..count_max` dropped pen segments: the skeleton of the digit's ink within `length` // 2
    pixels (Chebyshev) of a random skeleton pixel, thickened to `width` pixels (masks.stroke_masks)."""

    kind: str
    weight: float
    count_min: int
    count_max: int
    length: int
    width: int


DAMAGE_KINDS = {"square": SquareDamage, "strokes": StrokeDamage}
Damage = SquareDamage | StrokeDamage


@dataclass(frozen=True)
class MaskParams:
    fill: float
    seed: int
    families: dict[str, Damage]  # name -> family; each image gets one family, drawn by weight


@dataclass(frozen=True)
class ClassifierParams:
    epochs: int
    batch_size: int
    lr: float
    validation_split: float
    seed: int


@dataclass(frozen=True)
class GanParams:
    loop: str
    generator: str
    mask_channel: bool
    composite: bool
    mask_weight: float
    damage_threshold: float
    fresh_damage: bool
    discriminator: str
    epochs: int
    batch_size: int
    steps_per_epoch: int | None
    lr_g: float
    lr_d: float
    lr_schedule: str
    warmup_steps: int
    beta1: float
    real_label: float
    recon_weight: float
    class_weight: float
    reader_weight: float
    adversarial_warmup: int
    width: int
    encoder_depth: int
    ema: float
    precision: str
    seed: int


@dataclass(frozen=True)
class EvaluateParams:
    phone_digits: int
    grid_digits: int


@dataclass(frozen=True)
class TrackingParams:
    experiment: str


@dataclass(frozen=True)
class Params:
    data: DataParams
    mask: MaskParams
    classifier: ClassifierParams
    gan: GanParams
    evaluate: EvaluateParams
    tracking: TrackingParams


def _check_type(key: str, value, annotation: str):
    """Coerce ints to floats where a float is expected; reject everything else that does not match."""
    optional = annotation.endswith("| None")
    base = annotation.replace("| None", "").strip()
    if value is None:
        if optional:
            return None
        raise ParamsError(f"{key}: must be a {base}, got null")
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: must be an integer{' or null' if optional else ''}, got {value!r}")
        return value
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: must be a number, got {value!r}")
        return float(value)
    if base == "bool":
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: must be true or false, got {value!r}")
        return value
    if base.startswith("dict["):  # built and checked by its own builder (_build_mask)
        return value
    if base == "str":
        if not isinstance(value, str):
            raise ParamsError(f"{key}: must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {annotation} for {key}")


def _build_section(cls, raw, section: str):
    if not isinstance(raw, dict):
        raise ParamsError(f"{section}: must be a mapping of keys to values, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(f"{section}.{unknown[0]}: unknown key; allowed keys in '{section}' are {', '.join(fields)}")
    missing = [name for name in fields if name not in raw]
    if missing:
        raise ParamsError(f"{section}.{missing[0]}: missing key (required in '{section}')")
    # `from __future__ import annotations` keeps each field's type as its source text, e.g. "int | None".
    values = {name: _check_type(f"{section}.{name}", raw[name], f.type) for name, f in fields.items()}
    return cls(**values)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ParamsError(message)


def _require_damage_head(g: GanParams, key: str, does: str) -> None:
    """A non-zero gan.`key` acts on the damage head, which only the blind generator that composites has."""
    value = getattr(g, key)
    _require(
        value == 0 or (g.composite and not g.mask_channel),
        f"gan.{key}: {value} {does} a damage head, which only a blind restorer that composites has "
        f"(gan.mask_channel false, gan.composite true); got mask_channel {str(g.mask_channel).lower()}, "
        f"composite {str(g.composite).lower()}",
    )


def _validate_damage(key: str, d: Damage) -> None:
    _require(d.weight >= 0, f"{key}.weight: must be >= 0, got {d.weight}")
    _require(d.count_min >= 1, f"{key}.count_min: must be >= 1, got {d.count_min}")
    _require(
        d.count_max >= d.count_min, f"{key}.count_max: must be >= {key}.count_min ({d.count_min}), got {d.count_max}"
    )
    if isinstance(d, StrokeDamage):
        _require(1 <= d.length <= IMAGE_SIDE, f"{key}.length: must be in 1..{IMAGE_SIDE}, got {d.length}")
        _require(1 <= d.width <= 9, f"{key}.width: must be in 1..9, got {d.width}")
        return
    _require(1 <= d.side_min <= IMAGE_SIDE, f"{key}.side_min: must be in 1..{IMAGE_SIDE}, got {d.side_min}")
    _require(
        d.side_min <= d.side_max <= IMAGE_SIDE,
        f"{key}.side_max: must be in {key}.side_min ({d.side_min})..{IMAGE_SIDE}, got {d.side_max}",
    )
    for axis in ("row", "col"):
        lo, hi = getattr(d, f"{axis}_min"), getattr(d, f"{axis}_max")
        _require(lo >= 0, f"{key}.{axis}_min: must be >= 0, got {lo}")
        _require(hi >= lo, f"{key}.{axis}_max: must be >= {key}.{axis}_min ({lo}), got {hi}")
        _require(
            lo + d.side_max <= IMAGE_SIDE,
            f"{key}.{axis}_min: a {d.side_max}x{d.side_max} hole (side_max) at {axis} {lo} leaves the "
            f"{IMAGE_SIDE}x{IMAGE_SIDE} image; allowed is {key}.{axis}_min <= {IMAGE_SIDE - d.side_max}, got {lo}",
        )


def _build_mask(raw) -> MaskParams:
    """The mask section: fill, seed and the named damage families, each a mapping with its `kind`."""
    if not isinstance(raw, dict):
        raise ParamsError(f"mask: must be a mapping of keys to values, got {raw!r}")
    families = raw.get("families")
    if not isinstance(families, dict) or not families:
        raise ParamsError(f"mask.families: must be a non-empty mapping of family names to families, got {families!r}")
    built = {}
    for name, family in families.items():
        key = f"mask.families.{name}"
        kind = family.get("kind") if isinstance(family, dict) else None
        if kind not in DAMAGE_KINDS:
            raise ParamsError(f"{key}.kind: unknown kind {kind!r}; allowed values are {', '.join(DAMAGE_KINDS)}")
        built[name] = _build_section(DAMAGE_KINDS[kind], family, key)
    return _build_section(MaskParams, {**raw, "families": built}, "mask")


def _validate(p: Params) -> None:
    _require(
        p.data.dataset in DATASETS,
        f"data.dataset: unknown dataset {p.data.dataset!r}; allowed values are {', '.join(DATASETS)}",
    )
    for key in ("max_train", "max_test"):
        value = getattr(p.data, key)
        _require(value is None or value > 0, f"data.{key}: must be null or > 0, got {value}")

    m = p.mask
    _require(-1.0 <= m.fill <= 1.0, f"mask.fill: must be in [-1, 1] (the pixel scale), got {m.fill}")
    for name, family in m.families.items():
        _validate_damage(f"mask.families.{name}", family)
    _require(
        sum(family.weight for family in m.families.values()) > 0,
        "mask.families: every weight is 0; at least one family must have a weight > 0",
    )

    c = p.classifier
    _require(c.epochs > 0, f"classifier.epochs: must be > 0, got {c.epochs}")
    _require(c.batch_size > 0, f"classifier.batch_size: must be > 0, got {c.batch_size}")
    _require(c.lr > 0, f"classifier.lr: must be > 0, got {c.lr}")
    _require(
        0 < c.validation_split < 1,
        f"classifier.validation_split: must be in the open interval (0, 1), got {c.validation_split}",
    )

    g = p.gan
    _require(g.loop in LOOPS, f"gan.loop: unknown loop {g.loop!r}; allowed values are {', '.join(LOOPS)}")
    if g.loop == "chapter":
        wrong = {key: getattr(g, key) for key, value in CHAPTER_LOOP_FIXED.items() if getattr(g, key) != value}
        _require(
            not wrong,
            "gan.loop: chapter trains the chapter's networks on its adversarial loss alone, so it needs "
            + ", ".join(f"gan.{key}={CHAPTER_LOOP_FIXED[key]}" for key in wrong)
            + "; got "
            + ", ".join(f"gan.{key}={value}" for key, value in wrong.items())
            + " (the whole recipe: pipeline/common/config.py CHAPTER_RECIPE, docs/recipes.md)",
        )
    _require(
        g.generator in GENERATORS,
        f"gan.generator: unknown generator {g.generator!r}; allowed values are {', '.join(GENERATORS)}",
    )
    _require(
        g.discriminator in DISCRIMINATORS,
        f"gan.discriminator: unknown discriminator {g.discriminator!r}; allowed values are {', '.join(DISCRIMINATORS)}",
    )
    _require(
        g.precision in PRECISIONS,
        f"gan.precision: unknown precision {g.precision!r}; allowed values are {', '.join(PRECISIONS)}",
    )
    _require(g.epochs > 0, f"gan.epochs: must be > 0, got {g.epochs}")
    _require(g.batch_size > 0, f"gan.batch_size: must be > 0, got {g.batch_size}")
    _require(
        g.steps_per_epoch is None or g.steps_per_epoch > 0,
        f"gan.steps_per_epoch: must be null or > 0, got {g.steps_per_epoch}",
    )
    _require(g.lr_g > 0, f"gan.lr_g: must be > 0, got {g.lr_g}")
    _require(g.lr_d > 0, f"gan.lr_d: must be > 0, got {g.lr_d}")
    _require(
        g.lr_schedule in LR_SCHEDULES,
        f"gan.lr_schedule: unknown schedule {g.lr_schedule!r}; allowed values are {', '.join(LR_SCHEDULES)}",
    )
    _require(g.warmup_steps >= 0, f"gan.warmup_steps: must be >= 0, got {g.warmup_steps}")
    _require(g.adversarial_warmup >= 0, f"gan.adversarial_warmup: must be >= 0, got {g.adversarial_warmup}")
    _require(g.width > 0, f"gan.width: must be > 0, got {g.width}")
    _require(
        g.generator != "chapter" or g.width == CHAPTER_WIDTH,
        f"gan.width: the chapter's generator has {CHAPTER_WIDTH} filters at full resolution, got {g.width} "
        "(a width is for gan.generator unet or autoencoder)",
    )
    _require(g.encoder_depth > 0, f"gan.encoder_depth: must be > 0, got {g.encoder_depth}")
    _require(
        g.generator != "chapter" or g.encoder_depth == 1,
        f"gan.encoder_depth: the chapter's generator has one conv at each pooled resolution, got {g.encoder_depth} "
        "(a depth is for gan.generator unet or autoencoder)",
    )
    _require(0 <= g.beta1 < 1, f"gan.beta1: must be in [0, 1), got {g.beta1}")
    _require(0 < g.real_label <= 1, f"gan.real_label: must be in (0, 1], got {g.real_label}")
    _require(g.recon_weight >= 0, f"gan.recon_weight: must be >= 0, got {g.recon_weight}")
    _require(g.class_weight >= 0, f"gan.class_weight: must be >= 0, got {g.class_weight}")
    _require(g.reader_weight >= 0, f"gan.reader_weight: must be >= 0, got {g.reader_weight}")
    _require(g.mask_weight >= 0, f"gan.mask_weight: must be >= 0, got {g.mask_weight}")
    _require_damage_head(g, "mask_weight", "trains")
    _require(
        0 <= g.damage_threshold < 1,
        f"gan.damage_threshold: must be in [0, 1) (0 = the soft composite), got {g.damage_threshold}",
    )
    _require_damage_head(g, "damage_threshold", "thresholds")
    _require(0 <= g.ema < 1, f"gan.ema: must be in [0, 1) (0 = no averaging), got {g.ema}")

    e = p.evaluate
    _require(e.phone_digits >= 1, f"evaluate.phone_digits: must be >= 1, got {e.phone_digits}")
    _require(e.grid_digits >= 1, f"evaluate.grid_digits: must be >= 1, got {e.grid_digits}")
    _require(bool(p.tracking.experiment.strip()), "tracking.experiment: must be a non-empty name")


def parse_params(raw) -> Params:
    """Build and validate Params from the already-parsed YAML document."""
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml: the top level must be a mapping of sections, got {raw!r}")
    sections = {f.name: f.type for f in dataclasses.fields(Params)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown section; allowed sections are {', '.join(sections)}")
    missing = [s for s in sections if s not in raw]
    if missing:
        raise ParamsError(f"{missing[0]}: missing section in params.yaml")
    hints = typing.get_type_hints(Params)
    params = Params(
        **{
            name: _build_mask(raw[name]) if name == "mask" else _build_section(hints[name], raw[name], name)
            for name in sections
        }
    )
    _validate(params)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run from the project root)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw)


def flatten(params: Params) -> dict[str, object]:
    """`section.key -> value` (`mask.families.strokes.width -> 3` for nested keys), the names DVC uses, so
    MLflow and `dvc params diff` agree."""

    def dotted(prefix: str, values: dict) -> dict[str, object]:
        flat = {}
        for key, value in values.items():
            flat |= dotted(f"{prefix}{key}.", value) if isinstance(value, dict) else {f"{prefix}{key}": value}
        return flat

    return dotted("", dataclasses.asdict(params))


def set_override(raw: dict, key: str, value) -> None:
    """Set `section.key` (or a nested `mask.families.strokes.weight`) in the parsed YAML, as `dvc exp run -S`
    does; parse_params then checks the result like any params.yaml."""
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ParamsError(f"{key}: {part} is a value, not a section")
    node[last] = value
