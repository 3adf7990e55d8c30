"""params.yaml, typed and validated by pydantic.

Every stage calls `load_params()` first, so a typo, an unknown key, a wrong type or an impossible value stops the
pipeline with one line naming the key, the value and what was expected, before any data is read or any output is
touched. The gan section names a recipe (pipeline/training/recipes.py), which fills the dials left null.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ArgsKwargs, PydanticCustomError

from pipeline.common.errors import PipelineError
from pipeline.common.image import IMAGE_SIDE
from pipeline.training.recipes import RECIPES

DATASETS = ("mnist", "fashion-mnist")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")  # auto: pipeline/training/precision.py
STRICT = ConfigDict(extra="forbid")  # no key that nothing reads

Int = Annotated[int, Strict()]  # no "128" or 2.5 read as an integer
Float = Annotated[float, Strict()]  # an integer is a number too, a string or a bool is not
Positive = Annotated[Int, Field(gt=0)]
AtLeastOne = Annotated[Int, Field(ge=1)]
Side = Annotated[Int, Field(ge=1, le=IMAGE_SIDE)]
NonNegative = Annotated[Int, Field(ge=0)]
Corner = NonNegative
Weight = Annotated[Float, Field(ge=0)]
Rate = Annotated[Float, Field(gt=0)]
Fraction = Annotated[Float, Field(ge=0, lt=1)]


class ParamsError(PipelineError, ValueError):
    """params.yaml is missing, malformed or holds a value the pipeline cannot use."""


def refuse(message: str):
    """A rule across keys is broken: `message` is the whole line, naming the key, its value and what is allowed."""
    raise PydanticCustomError("refused", message)


@dataclass(frozen=True, config=STRICT)
class DataParams:
    dataset: Literal[DATASETS]
    max_train: Positive | None  # null: all
    max_test: Positive | None


@dataclass(frozen=True, config=STRICT)
class SquareDamage:
    """`count_min..count_max` square holes of side `side_min..side_max` (uniform integers, per hole), each
    top-left corner uniform in [row_min, min(row_max, 28 - side)] x [col_min, min(col_max, 28 - side)]."""

    kind: Literal["square"]
    weight: Weight
    side_min: Side
    side_max: Side
    count_min: AtLeastOne
    count_max: Int
    row_min: Corner
    row_max: Int
    col_min: Corner
    col_max: Int


@dataclass(frozen=True, config=STRICT)
class StrokeDamage:
    """`count_min..count_max` dropped pen segments: the skeleton of the digit's ink within `length` // 2
    pixels (Chebyshev) of a random skeleton pixel, thickened to `width` pixels (masks.stroke_masks)."""

    kind: Literal["strokes"]
    weight: Weight
    count_min: AtLeastOne
    count_max: Int
    length: Side
    width: Annotated[Int, Field(ge=1, le=9)]


DAMAGE_KINDS = {"square": SquareDamage, "strokes": StrokeDamage}
Damage = Annotated[SquareDamage | StrokeDamage, Field(discriminator="kind")]


def _family_rules(key: str, d: Damage) -> list[tuple[bool, str]]:
    """(holds, the line that says it does not) for the rules across one family's keys."""
    rules = [
        (d.count_max >= d.count_min, f"{key}.count_max: must be >= {key}.count_min ({d.count_min}), got {d.count_max}")
    ]
    if isinstance(d, SquareDamage):
        rules.append(
            (d.side_max >= d.side_min, f"{key}.side_max: must be >= {key}.side_min ({d.side_min}), got {d.side_max}")
        )
        for axis in ("row", "col"):
            lo, hi = getattr(d, f"{axis}_min"), getattr(d, f"{axis}_max")
            rules.append((hi >= lo, f"{key}.{axis}_max: must be >= {key}.{axis}_min ({lo}), got {hi}"))
            rules.append(
                (
                    lo + d.side_max <= IMAGE_SIDE,
                    f"{key}.{axis}_min: a {d.side_max}x{d.side_max} hole (side_max) at {axis} {lo} leaves the "
                    f"{IMAGE_SIDE}x{IMAGE_SIDE} image; allowed is {key}.{axis}_min <= {IMAGE_SIDE - d.side_max}, got {lo}",
                )
            )
    return rules


@dataclass(frozen=True, config=STRICT)
class MaskParams:
    fill: Annotated[Float, Field(ge=-1, le=1)]  # the pixel scale
    seed: Int
    families: Annotated[dict[str, Damage], Field(min_length=1)]  # name -> family; each image gets one, by weight

    @model_validator(mode="after")
    def _families_fit(self):
        for name, family in self.families.items():
            for holds, line in _family_rules(f"mask.families.{name}", family):
                if not holds:
                    refuse(line)
        if not any(family.weight for family in self.families.values()):
            refuse("mask.families: every weight is 0; at least one family must have a weight > 0")
        return self


@dataclass(frozen=True, config=STRICT)
class ClassifierParams:
    epochs: Positive
    batch_size: Positive
    lr: Rate
    validation_split: Annotated[Float, Field(gt=0, lt=1)]
    seed: Int


@dataclass(frozen=True, config=STRICT)
class GanParams:
    """The recipe and the dials a user may turn; a dial left null takes the recipe's value."""

    recipe: Literal[tuple(RECIPES)]
    epochs: Positive
    batch_size: Positive
    steps_per_epoch: Positive | None  # null: the training images // batch_size
    lr_g: Rate
    lr_d: Rate
    recon_weight: Weight
    ema: Fraction
    reader_warmup: NonNegative  # updates of the generator's digit reader alone before the GAN trains
    precision: Literal[PRECISIONS]
    seed: Int

    @model_validator(mode="before")
    @classmethod
    def _recipe_fills_the_dials(cls, raw):
        given = raw.kwargs if isinstance(raw, ArgsKwargs) else raw
        recipe = RECIPES.get(given.get("recipe")) if isinstance(given, dict) else None
        if recipe is None:  # the recipe's own check names it
            return raw
        for key, value in recipe.fixed.items():
            if given.get(key) is not None and given[key] != value:
                refuse(f"gan.{key}: the {given['recipe']} recipe fixes it at {value}, got {given[key]}; leave it null")
        return {
            **given,
            **{key: value for key, value in (recipe.dials | recipe.fixed).items() if given.get(key) is None},
        }


@dataclass(frozen=True, config=STRICT)
class EvaluateParams:
    phone_digits: AtLeastOne  # the length of the phone number in the "whole number read right" metric
    grid_digits: AtLeastOne
    damage_threshold: Fraction  # inference only: 0 the soft composite; see training/models.with_damage_threshold


@dataclass(frozen=True, config=STRICT)
class TrackingParams:
    experiment: Annotated[str, Field(pattern=r"\S")]


@dataclass(frozen=True, config=STRICT)
class Params:
    data: DataParams
    mask: MaskParams
    classifier: ClassifierParams
    gan: GanParams
    evaluate: EvaluateParams
    tracking: TrackingParams

    @model_validator(mode="after")
    def _threshold_needs_a_damage_head(self):
        recipe = RECIPES[self.gan.recipe]
        if self.evaluate.damage_threshold and not (recipe.composite and not recipe.mask_channel):
            refuse(
                f"evaluate.damage_threshold: {self.evaluate.damage_threshold} thresholds a damage head, which only "
                f"a blind restorer that composites has (gan.recipe blind); got gan.recipe {self.gan.recipe}"
            )
        return self


SECTIONS = dict(
    data=DataParams,
    mask=MaskParams,
    classifier=ClassifierParams,
    gan=GanParams,
    evaluate=EvaluateParams,
    tracking=TrackingParams,
)
EXPECTED = {  # pydantic's error type -> what was expected, in the words of this file's docs
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "literal_error": "unknown value; allowed values are {expected}",
    "union_tag_invalid": "unknown kind; allowed values are {expected_tags}",
    "too_short": "must be a non-empty mapping",
    "string_pattern_mismatch": "must be a non-empty name",
    "dataclass_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "dict_type": "must be a mapping of keys to values",
    "missing": "missing key",
}


def _owner(loc: list[str]):
    """The dataclass whose key `loc` names: a section, a damage family (loc holds its kind) or Params."""
    if len(loc) == 5:  # mask.families.<name>.<kind>.<key>
        return DAMAGE_KINDS[loc[3]]
    return SECTIONS[loc[0]] if len(loc) == 2 else Params


def describe(error: dict) -> str:
    """One of pydantic's errors as this project's one line: the key, what was expected, the value."""
    if error["type"] == "refused":
        return error["msg"]
    loc = [str(part) for part in error["loc"]]
    owner = _owner(loc)
    if len(loc) == 5:
        del loc[3]  # the family's kind, which pydantic puts in the path
    if error["type"] == "union_tag_invalid":
        loc.append("kind")
    key = ".".join(loc) or "params.yaml"
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        allowed = ", ".join(f.name for f in dataclasses.fields(owner))
        return f"{key}: unknown key; allowed keys in '{'.'.join(loc[:-1]) or 'params.yaml'}' are {allowed}"
    if error["type"] == "missing":
        return f"{key}: missing {'section' if len(loc) == 1 else 'key'}"
    ctx = {name: str(value).replace("'", "").replace(" or ", ", ") for name, value in error.get("ctx", {}).items()}
    expected = EXPECTED.get(error["type"], error["msg"]).format(**ctx)
    value = error["ctx"]["tag"] if error["type"] == "union_tag_invalid" else error["input"]
    return f"{key}: {expected}, got {value!r}"


PARAMS = TypeAdapter(Params)


def parse_params(raw) -> Params:
    """Build and validate Params from the already-parsed YAML document."""
    try:
        return PARAMS.validate_python(raw)
    except ValidationError as exc:
        raise ParamsError(describe(exc.errors()[0])) from None


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
