"""User images -> MNIST's 28x28 frame, with their holes carried along.

MNIST's own recipe: the digit's bounding box is scaled (aspect kept) to fit in 20x20, then placed in
a 28x28 field so that its centre of mass sits at the centre. Before that, a user image is turned
into MNIST's polarity (white ink on black) and contrast. Assumptions, chosen for scans and photos
of digits on paper:

- the border of the image is background; if its median is light, the image is inverted;
- the background level (median of the border) becomes 0 and the brightest known pixel 255;
- the digit's box is the box of its ink (pixels above INK of that range) and of the hole together,
  since the missing strokes lie under the hole;
- an image that already is 28x28 is taken as it is: it is assumed to be in MNIST's format already.

Holes are carried through every step; a frame pixel is a hole if any part of it came from one.
A phone number is one row of digits separated by blank columns (no touching digits, the hole
within one digit); `split_number` cuts it into its digits before each is framed.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.common.errors import PipelineError

SIDE, BOX = 28, 20
INK = 0.3  # share of the 0..255 range above which a normalised pixel counts as ink
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# A written number (split_number): below this contrast (of 255) between ink and background the image is blank
# (a photo of empty paper: normalise would stretch its noise to full ink); marks shorter than this are specks,
# not digits (a digit framed from fewer pixels is guesswork); a run of ink wider than this many line heights (the
# tallest digit's) is two digits touching. Single MNIST test digits reach 1.0 line height: they are 20 pixels
# tall at most and as wide at most; two average digits side by side reach 1.5.
MIN_CONTRAST = 32
MIN_DIGIT_HEIGHT = 8
TOUCHING = 1.3


def decode_image(data: bytes, name: str, max_pixels: int | None = None) -> np.ndarray:
    """PNG or JPEG bytes as uint8 grayscale; PipelineError naming `name` if they are not one, or if the picture
    holds more than `max_pixels`. Pillow reads the size from the header, before any pixel is decoded, so an
    oversized picture costs no memory. Transparent pixels become paper: a drawing app's PNG is often ink on
    a transparent canvas, whose hidden colour (black, as a rule) would otherwise be taken for the background."""
    try:
        picture = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise PipelineError(
            f"{name}: the picture holds too many pixels (Pillow refuses it as a decompression bomb)"
        ) from None
    except (Image.UnidentifiedImageError, OSError, ValueError):
        raise PipelineError(f"{name}: not a readable PNG or JPEG image") from None
    if picture.format not in ("PNG", "JPEG"):
        raise PipelineError(f"{name}: a {picture.format} image; send PNG or JPEG")
    width, height = picture.size
    if max_pixels is not None and width * height > max_pixels:
        raise PipelineError(
            f"{name}: {width}x{height} pixels ({width * height:,}), at most {max_pixels:,}; send a smaller picture"
        )
    try:
        picture.load()
    except (OSError, ValueError, SyntaxError):
        raise PipelineError(f"{name}: a truncated or corrupt {picture.format} image") from None
    has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
    if not has_alpha:
        return np.asarray(picture.convert("L"))
    gray, alpha = np.moveaxis(np.asarray(picture.convert("LA"), dtype=np.float32), -1, 0)
    opaque = gray[alpha > 127]
    paper = 255.0 if opaque.size == 0 or np.median(opaque) < 128 else 0.0  # the opposite of the ink
    return np.rint(gray * (alpha / 255.0) + paper * (1.0 - alpha / 255.0)).astype(np.uint8)


def read_gray(path: str | Path) -> np.ndarray:
    """A PNG or JPEG file as uint8 grayscale (decode_image); PipelineError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: no such file")
    return decode_image(path.read_bytes(), str(path))


def read_mask(path: str | Path, shape: tuple[int, int], image_name: str) -> np.ndarray:
    """A mask image as boolean holes: light pixels (> 127) are missing. It must match the image's size."""
    mask = read_gray(path)
    if mask.shape != shape:
        raise PipelineError(
            f"{path}: the mask is {mask.shape[1]}x{mask.shape[0]} (width x height) but {image_name} is "
            f"{shape[1]}x{shape[0]}; a mask must have its image's size"
        )
    return mask > 127


def parse_box(text: str) -> tuple[int, int, int, int]:
    """`row,col,h,w` -> four ints; h and w must be positive."""
    try:
        row, col, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise PipelineError(f"--box: expected four integers row,col,h,w, got {text!r}") from None
    if row < 0 or col < 0 or h < 1 or w < 1:
        raise PipelineError(f"--box: row and col must be >= 0, h and w >= 1; got {text!r}")
    return row, col, h, w


def box_mask(box: tuple[int, int, int, int], shape: tuple[int, int], image_name: str) -> np.ndarray:
    """Boolean holes of `box` (row, col, h, w) in an image of `shape`; the box must lie inside it."""
    row, col, h, w = box
    if row + h > shape[0] or col + w > shape[1]:
        raise PipelineError(
            f"--box {row},{col},{h},{w}: leaves {image_name}, which is {shape[1]}x{shape[0]} (width x height)"
        )
    holes = np.zeros(shape, dtype=bool)
    holes[row : row + h, col : col + w] = True
    return holes


def normalise(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """White ink on a black background, background at 0 and the brightest known ink at 255; holes at 0."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    border_known = np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]])
    border = border[~border_known] if (~border_known).any() else border
    x = image.astype(np.float32)
    background = float(np.median(border))
    if background > 127:
        x, background = 255.0 - x, 255.0 - background
    x = np.clip(x - background, 0, None)
    peak = float(x[~holes].max()) if (~holes).any() else 0.0
    x = x * (255.0 / peak) if peak > 0 else x
    return np.where(holes, 0.0, x).astype(np.float32)


def fit_frame(ink: np.ndarray, holes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised image -> (uint8 28x28, bool 28x28 holes): box of ink and hole fit in 20x20, centred by mass."""
    rows, cols = np.nonzero((ink > INK * 255) | holes)
    if len(rows) == 0:
        return np.zeros((SIDE, SIDE), np.uint8), np.zeros((SIDE, SIDE), bool)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    holes = holes[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = BOX / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))  # (width, height)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(ink, size, interpolation=interpolation)
    small_holes = cv2.resize(holes.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    mass = small.sum()
    grid_r, grid_c = np.indices(small.shape)
    centre = (
        ((grid_r * small).sum() / mass, (grid_c * small).sum() / mass)
        if mass > 0
        else ((small.shape[0] - 1) / 2, (small.shape[1] - 1) / 2)
    )
    top = int(np.clip(round(SIDE / 2 - centre[0]), 0, SIDE - small.shape[0]))
    left = int(np.clip(round(SIDE / 2 - centre[1]), 0, SIDE - small.shape[1]))
    frame = np.zeros((SIDE, SIDE), np.float32)
    frame_holes = np.zeros((SIDE, SIDE), bool)
    frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    frame_holes[top : top + small.shape[0], left : left + small.shape[1]] = small_holes
    frame[frame_holes] = 0  # partly covered by the hole: unknown, like the rest of it
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8), frame_holes


def to_mnist(image: np.ndarray, holes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One digit image of any size -> MNIST's frame (28x28 images are kept as they are)."""
    if image.shape == (SIDE, SIDE):
        return image, holes
    return fit_frame(normalise(image, holes), holes)


def split_number(
    image: np.ndarray, holes: np.ndarray, digits: int | None, name: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A row of digits -> each in MNIST's frame, left to right. The digits are the runs of columns holding ink
    or hole. `digits` None: as many digits as runs. Otherwise a digit that lost a piece of its stroke can fall
    apart into two runs: while there are more runs than `digits`, the two runs with the narrowest gap between
    them are one digit (the gaps between digits are the wide ones). PipelineError naming `name` if the image
    shows no ink (contrast below MIN_CONTRAST), no ink as tall as a digit (MIN_DIGIT_HEIGHT), a run wider than
    TOUCHING line heights (two digits touching, or joined because there were more than `digits`), or, with
    `digits`, fewer runs than that."""
    contrast = int(np.ptp(np.where(holes, np.median(image), image)))
    if contrast < MIN_CONTRAST:
        raise PipelineError(
            f"{name}: blank: no ink stands out from the background (contrast {contrast} of 255, at least "
            f"{MIN_CONTRAST} needed)"
        )
    ink = normalise(image, holes)
    marked = (ink > INK * 255) | holes
    used = marked.any(axis=0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], used.astype(np.int8), [0]])))
    runs = list(zip(edges[::2], edges[1::2]))
    heights = [_height(marked[:, a:b]) for a, b in runs]
    line = max(heights, default=0)
    if line < MIN_DIGIT_HEIGHT:
        raise PipelineError(
            f"{name}: no digit found: the tallest mark is {line} pixels high, a digit at least {MIN_DIGIT_HEIGHT}"
        )
    while digits is not None and len(runs) > digits:
        i = min(range(len(runs) - 1), key=lambda k: runs[k + 1][0] - runs[k][1])
        runs[i : i + 2] = [(runs[i][0], runs[i + 1][1])]
    wide = next(((a, b) for a, b in runs if b - a > TOUCHING * line), None)
    if wide:
        raise PipelineError(
            f"{name}: the ink in columns {wide[0]}..{wide[1] - 1} is {(wide[1] - wide[0]) / line:.1f} times as wide "
            f"as the digits are tall: digits touching (leave a gap between them)"
            + ("" if digits is None else f" or more than {digits} digits")
        )
    if digits is not None and len(runs) != digits:
        raise PipelineError(
            f"{name}: found {len(runs)} digits (runs of ink separated by blank columns), expected {digits}; "
            "a phone number must be one row of separate digits"
        )
    return [fit_frame(ink[:, a:b], holes[:, a:b]) for a, b in runs]


def _height(marked: np.ndarray) -> int:
    """Rows from the first marked one to the last, inclusive (0 for none)."""
    rows = np.flatnonzero(marked.any(axis=1))
    return int(rows[-1] - rows[0] + 1) if len(rows) else 0


NO_FILL_VALUE = -1  # the `fill_value` param's default: no detection rule, the mask alone says what is missing


def checked_fill_value(fill_value: int, name: str = "fill_value") -> int:
    """The one check of a fill value, for the chain, its REST param and the CLI's --fill-value (named `name`):
    a pixel value 0..255 that marks missing pixels, or NO_FILL_VALUE for none."""
    if fill_value != NO_FILL_VALUE and not 0 <= fill_value <= 255:
        raise ValueError(f"{name}: must be in 0..255 (or {NO_FILL_VALUE} for none), got {fill_value}")
    return fill_value
