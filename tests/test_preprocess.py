"""MNIST's preprocessing of user images: polarity, contrast, fit in 20x20, centre by mass, holes carried."""

import io

import cv2
import numpy as np
import pytest
from conftest import mirror_dir

from pipeline.common.errors import PipelineError
from pipeline.images.datasets import load_split
from pipeline.serving import preprocess


@pytest.fixture(scope="module")
def digits():
    images, labels = load_split(mirror_dir() / "mnist", "test", 10)
    return images, labels


def on_paper(image: np.ndarray, scale: int, pad: tuple[int, int, int, int]) -> np.ndarray:
    """An MNIST digit as a scan: dark ink on white paper, `scale` times larger, off-centre margins."""
    big = 255 - cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, *pad, cv2.BORDER_CONSTANT, value=255)


def correlation(a, b) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def ink_columns(image: np.ndarray) -> np.ndarray:
    """A digit cut to the columns of its ink, so that two side by side touch."""
    columns = np.flatnonzero(image.any(axis=0))
    return image[:, columns[0] : columns[-1] + 1]


def centre_of_mass(image) -> np.ndarray:
    rows, cols = np.indices(image.shape)
    return np.array([(rows * image).sum(), (cols * image).sum()]) / image.sum()


def test_a_scan_comes_back_in_mnist_frame(digits):
    images, _ = digits
    for image in images[:5]:
        frame, holes = preprocess.to_mnist(on_paper(image, 4, (7, 31, 40, 3)), np.zeros((150, 155), bool))
        assert frame.shape == (28, 28) and frame.dtype == np.uint8 and not holes.any()
        rows, cols = np.nonzero(frame > preprocess.INK * 255)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 in (19, 20, 21)  # the digit's box fills 20x20
        assert np.abs(centre_of_mass(frame.astype(float)) - 14.0).max() <= 1.0  # MNIST puts it at (14, 14)
        assert correlation(frame, image) > 0.9  # MNIST's own digits went through the same recipe


def test_a_28x28_image_is_kept_as_it_is(digits):
    image = digits[0][0]
    holes = preprocess.box_mask((10, 10, 8, 8), image.shape, "x")
    frame, frame_holes = preprocess.to_mnist(image, holes)
    assert np.array_equal(frame, image) and np.array_equal(frame_holes, holes)


def test_the_hole_travels_with_the_digit(digits):
    image = on_paper(digits[0][0], 4, (0, 0, 0, 0))
    holes = preprocess.box_mask((40, 40, 32, 32), image.shape, "x")  # the middle of the 112x112 scan
    frame, frame_holes = preprocess.to_mnist(image, holes)
    rows, cols = np.nonzero(frame_holes)
    assert 64 <= frame_holes.sum() <= 100  # the 80-pixel-tall 7 becomes 20: 32 pixels -> 8, 9 with partial edges
    assert 8 <= rows.mean() <= 20 and 8 <= cols.mean() <= 20
    assert not frame[frame_holes].any()  # what was under the hole is unknown, not copied


def test_a_phone_number_splits_into_its_digits(digits):
    images, _ = digits
    strip = 255 - cv2.resize(np.hstack(images), None, fx=2, fy=2)
    cells = preprocess.split_number(strip, np.zeros(strip.shape, bool), 10, "number.png")
    assert len(cells) == 10
    for (frame, _), image in zip(cells, images):
        assert correlation(frame, image) > 0.85


def test_a_digit_that_lost_a_piece_of_stroke_and_fell_apart_is_read_as_one(digits):
    images, _ = digits
    broken = images.copy()
    broken[0][:, 13:15] = 0  # the 7's stroke cut through: its ink is now two runs of columns
    strip = np.hstack(broken)
    assert np.diff(np.concatenate([[0], (strip > 0.3 * 255).any(axis=0).astype(int), [0]])).clip(0).sum() == 11
    cells = preprocess.split_number(strip, np.zeros(strip.shape, bool), 10, "number.png")
    assert len(cells) == 10
    for (frame, _), image in zip(cells[1:], images[1:]):
        assert correlation(frame, image) > 0.85  # the others unchanged


def test_a_phone_number_with_a_digit_missing_is_refused(digits):
    strip = np.hstack(digits[0][:9])
    with pytest.raises(PipelineError, match="number.png: found 9 digits .* expected 10"):
        preprocess.split_number(strip, np.zeros(strip.shape, bool), 10, "number.png")


@pytest.mark.parametrize(
    "box, message",
    [
        ("1,2,3", "expected four integers"),
        ("1,2,0,4", "h and w >= 1"),
    ],
)
def test_bad_boxes_are_refused(box, message):
    with pytest.raises(PipelineError, match=message):
        preprocess.parse_box(box)


def test_a_drawing_on_a_transparent_canvas_reads_as_ink_on_paper(digits):
    """A drawing app's PNG: dark ink, every other pixel transparent (and black underneath, as such apps store it)."""
    from PIL import Image

    ink = cv2.resize(digits[0][0], None, fx=4, fy=4)
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = ink  # the ink's coverage; its colour black, like the hidden canvas
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    gray = preprocess.decode_image(buffer.getvalue(), "drawing.png")
    np.testing.assert_allclose(gray, 255 - ink.astype(int), atol=1)  # dark ink on white paper
    frame, _ = preprocess.to_mnist(gray, np.zeros(gray.shape, bool))
    assert correlation(frame, digits[0][0]) > 0.9


def test_a_gif_an_oversized_or_a_truncated_picture_is_refused():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (40, 30), 255).save(buffer, "GIF")
    with pytest.raises(PipelineError, match="x.gif: a GIF image; send PNG or JPEG"):
        preprocess.decode_image(buffer.getvalue(), "x.gif")
    big = cv2.imencode(".png", np.full((100, 101), 255, np.uint8))[1].tobytes()
    with pytest.raises(PipelineError, match=r"x.png: 101x100 pixels \(10,100\), at most 10,000"):
        preprocess.decode_image(big, "x.png", max_pixels=10_000)
    noise = cv2.imencode(".png", np.random.default_rng(0).integers(0, 256, (50, 200), np.uint8))[1].tobytes()
    with pytest.raises(PipelineError, match="x.png: a truncated or corrupt PNG image"):
        preprocess.decode_image(noise[: len(noise) // 2], "x.png")


@pytest.mark.parametrize(
    "case, message",
    [
        ("blank", "blank: no ink stands out from the background"),
        ("faint", r"blank: .*\(contrast 20 of 255"),
        ("speck", "no digit found: the tallest mark is 3 pixels high"),
        ("touching", r"the ink in columns 0\.\.\d+ is 1\.\d times as wide as the digits are tall: digits touching"),
    ],
)
def test_a_number_that_cannot_be_split_is_refused_naming_why(digits, case, message):
    images, _ = digits
    strip = np.hstack(images)
    if case == "blank":
        strip = np.zeros_like(strip)
    elif case == "faint":
        strip = (strip > 127).astype(np.uint8) * 20  # paper texture, not ink
    elif case == "speck":
        strip = np.zeros_like(strip)
        strip[12:15, 40:43] = 255
    else:  # the first two digits side by side, no blank column between them
        strip = np.hstack([ink_columns(images[0]), ink_columns(images[1]), *images[2:]])
    with pytest.raises(PipelineError, match=f"number.png: {message}"):
        preprocess.split_number(strip, np.zeros(strip.shape, bool), None, "number.png")


def test_without_a_count_every_run_is_a_digit(digits):
    images, _ = digits
    strip = np.hstack(images[:7])
    cells = preprocess.split_number(strip, np.zeros(strip.shape, bool), None, "number.png")
    assert len(cells) == 7 and all(correlation(frame, image) > 0.85 for (frame, _), image in zip(cells, images))
