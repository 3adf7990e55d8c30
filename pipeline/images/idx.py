"""Parse the IDX format that MNIST and Fashion-MNIST ship in (http://yann.lecun.com/exdb/mnist/).

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then one big-endian uint32 per dimension, then the payload.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from pipeline.common.errors import PipelineError

UBYTE = 0x08


class IdxError(PipelineError, ValueError):
    """An IDX file is malformed: bad magic number, unexpected shape or truncated payload."""


def parse_idx(payload: bytes, name: str = "<bytes>") -> np.ndarray:
    if len(payload) < 4:
        raise IdxError(f"{name}: {len(payload)} bytes is too short for an IDX header")
    zero, dtype_code, ndim = int.from_bytes(payload[:2], "big"), payload[2], payload[3]
    if zero != 0 or dtype_code != UBYTE or ndim not in (1, 3):
        raise IdxError(
            f"{name}: bad magic number 0x{payload[:4].hex()}; expected 0x00000801 (labels) or 0x00000803 (images)"
        )
    header_end = 4 + 4 * ndim
    if len(payload) < header_end:
        raise IdxError(f"{name}: header truncated")
    shape = tuple(int.from_bytes(payload[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    body = payload[header_end:]
    if len(body) != expected:
        raise IdxError(f"{name}: header promises shape {shape} ({expected} bytes), payload holds {len(body)} bytes")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def read_idx_gz(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        payload = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise IdxError(f"{path}: not a complete gzip file ({exc})") from None
    return parse_idx(payload, str(path))
