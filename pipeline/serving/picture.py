"""A whole handwritten number as the restaurant's app has it: one PNG or JPEG, base64 in the JSON request.

    {"inputs": {"picture": "<base64 PNG or JPEG>"}, "params": {"digits": 10}}

The picture is decoded, split into digits and framed by the code `digit-restore --phone` uses
(pipeline/serving/preprocess.py), so the endpoint and the command read the same file alike. The param `digits`
(0: any count) is the number's expected length: another count is answered 400, not guessed. The answer is
the number as a string, each digit's reading and confidence, and the restored digits side by side as a base64
PNG, for the staff to look at. Each problem with the picture is a BadRequest (400) naming it.
"""

from __future__ import annotations

import base64
import binascii

import cv2
import numpy as np

from pipeline.common.errors import PipelineError
from pipeline.serving import preprocess
from pipeline.serving.chain_input import BadRequest

ANY_COUNT = 0  # the `digits` param's default: read as many digits as the picture holds
MAX_BYTES = 4 * 2**20  # of the decoded file: a phone number drawn on an iPad is some 20 to 200 KB as PNG
MAX_PIXELS = 12_000_000  # an iPad camera's full 12-megapixel photo; decoded, 12 MB of grayscale
MAX_DIGITS = 20  # per picture: a phone number with its country code is at most 15


def checked_digits(value) -> int:
    """The `digits` param as an int, 1..MAX_DIGITS or ANY_COUNT."""
    if value is None:
        return ANY_COUNT
    try:
        whole = not isinstance(value, bool) and float(value).is_integer()
    except (TypeError, ValueError):
        whole = False
    if not whole or not 0 <= int(value) <= MAX_DIGITS:
        raise BadRequest(f"digits: the number's expected length, 1..{MAX_DIGITS} (or 0 for any), got {value!r}")
    return int(value)


def picture_bytes(value) -> bytes:
    """The request's `picture` field, base64-decoded; BadRequest if it is no base64 string or too long."""
    text = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value  # MLflow wraps it so
    if not isinstance(text, str):
        raise BadRequest("picture: expected one base64 string of a PNG or JPEG file")
    if not text:
        raise BadRequest("picture: empty; send the PNG or JPEG file, base64-encoded")
    if len(text) > 4 * (MAX_BYTES // 3 + 1):  # checked before decoding: base64 is 4 characters per 3 bytes
        raise BadRequest(f"picture: about {len(text) * 3 // 4} bytes, at most {MAX_BYTES}; send a smaller file")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"picture: not base64 ({exc})") from None
    if len(data) > MAX_BYTES:
        raise BadRequest(f"picture: {len(data)} bytes, at most {MAX_BYTES}; send a smaller file")
    return data


def picture_frames(value, digits: int) -> np.ndarray:
    """The picture's digits, left to right, in MNIST's frame: uint8 (k, 28, 28); BadRequest naming what is wrong."""
    try:
        image = preprocess.decode_image(picture_bytes(value), "picture", max_pixels=MAX_PIXELS)
        cells = preprocess.split_number(image, np.zeros(image.shape, bool), digits or None, "picture")
    except PipelineError as exc:
        raise BadRequest(str(exc)) from None
    if len(cells) > MAX_DIGITS:
        raise BadRequest(f"picture: {len(cells)} digits found, at most {MAX_DIGITS} in one picture")
    return np.stack([frame for frame, _ in cells])


def png_base64(image: np.ndarray) -> str:
    _, encoded = cv2.imencode(".png", image)
    return base64.b64encode(encoded.tobytes()).decode("ascii")


def picture_answer(output: dict) -> dict:
    """The chain's output on the picture's digits -> what the app shows: `number` (str), `digit` and
    `confidence` per digit, `restored` (base64 PNG, 28 pixels high, the digits side by side)."""
    digits = [int(d) for d in output["digit"]]
    return {
        "number": "".join(map(str, digits)),
        "digit": digits,
        "confidence": [float(c) for c in output["confidence"]],
        "restored": png_base64(np.hstack(list(output["restored"]))),
    }
