"""The two datasets: their files, the SHA-256 of each decompressed payload, and loading them as arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.images.idx import IdxError, read_idx_gz

SPLITS = ("train", "test")
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# SHA-256 of the decompressed IDX payloads (gzip wrappers differ between mirrors, payloads do not).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

# Public mirrors, in the order tried after the local one: those torchvision and Keras use.
PUBLIC_MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}


def load_split(raw_dir: str | Path, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of 'train' or 'test', the first `limit` of them."""
    raw_dir = Path(raw_dir)
    images = read_idx_gz(raw_dir / FILES[f"{split}_images"])
    labels = read_idx_gz(raw_dir / FILES[f"{split}_labels"])
    if images.ndim != 3 or labels.ndim != 1:
        raise IdxError(f"{raw_dir}: {split} images must be 3-D and labels 1-D, got {images.shape} and {labels.shape}")
    if len(images) != len(labels):
        raise IdxError(f"{raw_dir}: {len(images)} {split} images but {len(labels)} labels")
    return images[:limit], labels[:limit]


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 [-1, 1] with a channel axis: the scale the models and the tanh generator use."""
    return (images.astype(np.float32)[..., None] / 127.5) - 1.0


def split_limit(data, split: str) -> int | None:
    """How many of `split`'s images params `data` (data.max_train / data.max_test) keeps; None for all."""
    return data.max_train if split == "train" else data.max_test
