import gzip

import numpy as np
import pytest

from pipeline.images.datasets import load_split
from pipeline.images.idx import IdxError, parse_idx, read_idx_gz


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parses_images_and_labels():
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28) % 256
    labels = np.array([7, 3], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images)), images)
    np.testing.assert_array_equal(parse_idx(idx_bytes(labels)), labels)


def test_rejects_a_bad_magic_number():
    payload = bytearray(idx_bytes(np.zeros(3, dtype=np.uint8)))
    payload[2] = 0x0D  # float32 type code: not what MNIST ships
    with pytest.raises(IdxError, match="bad magic number 0x00000d01"):
        parse_idx(bytes(payload), "labels.idx")


def test_rejects_a_payload_shorter_than_its_header_says():
    with pytest.raises(IdxError, match=r"shape \(5,\) \(5 bytes\), payload holds 4 bytes"):
        parse_idx(idx_bytes(np.zeros(5, dtype=np.uint8))[:-1])


def test_rejects_a_truncated_gzip(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, dtype=np.uint8)))[:-10])
    with pytest.raises(IdxError, match="not a complete gzip file"):
        read_idx_gz(path)


def test_image_and_label_counts_must_match(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28)))))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(2))))
    with pytest.raises(IdxError, match="3 test images but 2 labels"):
        load_split(tmp_path, "test")
