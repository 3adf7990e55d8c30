"""Fetch the four IDX .gz files of a dataset, verified, from the first mirror that serves them.

Mirrors are tried in order: the local folder named by $DIGIT_RESTORE_MIRROR
(laid out as <folder>/<dataset>/<file>), then the public ones (overridable with
$DIGIT_RESTORE_PUBLIC_MIRRORS, space-separated base URLs, empty for none).
A file lands under its final name only after its decompressed payload matched
the expected SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

from pipeline.common import paths
from pipeline.common.atomic import atomic_path
from pipeline.common.errors import PipelineError
from pipeline.images.datasets import FILES, PUBLIC_MIRRORS, SHA256

MIRROR_ENV = "DIGIT_RESTORE_MIRROR"
PUBLIC_MIRRORS_ENV = "DIGIT_RESTORE_PUBLIC_MIRRORS"
CONNECT_TIMEOUT_S = 5


class DownloadError(PipelineError):
    """No mirror delivered a file whose payload matched its checksum."""


def mirrors(dataset: str) -> list[str]:
    found = []
    local = os.environ.get(MIRROR_ENV)
    if local:
        found.append(str(paths.resolve_from_root(local) / dataset))
    public = os.environ.get(PUBLIC_MIRRORS_ENV)
    found.extend(public.split() if public is not None else PUBLIC_MIRRORS[dataset])
    return found


def fetch(mirror: str, name: str) -> bytes:
    if "://" not in mirror:
        return (Path(mirror) / name).read_bytes()
    with urllib.request.urlopen(mirror.rstrip("/") + "/" + name, timeout=CONNECT_TIMEOUT_S) as response:
        return response.read()


def verify(blob: bytes, expected_sha256: str) -> None:
    try:
        payload = gzip.decompress(blob)
    except (OSError, EOFError) as exc:
        raise DownloadError(f"not a complete gzip file ({exc})") from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != expected_sha256:
        raise DownloadError(f"checksum mismatch: payload sha256 {digest}, expected {expected_sha256}")


def download_file(name: str, expected_sha256: str, sources: list[str], dest: Path) -> str:
    """Store the first verified copy of `name` at `dest`; return the mirror that served it."""
    failures = []
    for mirror in sources:
        try:
            blob = fetch(mirror, name)
            verify(blob, expected_sha256)
        except (OSError, DownloadError) as exc:
            failures.append(f"  {mirror}: {exc}")
            continue
        with atomic_path(dest) as tmp:
            tmp.write_bytes(blob)
        return mirror
    tried = "\n".join(failures) or "  (no mirror configured)"
    raise DownloadError(
        f"could not get {name}: no mirror served a verified copy. Tried:\n{tried}\n"
        f"Set {MIRROR_ENV} to a folder holding <dataset>/{name} (e.g. ../shared/datasets)."
    )


def fetch_dataset(dataset: str, dest: Path) -> None:
    """All four files of `dataset` into the folder `dest`, which is replaced only once all are verified."""
    sources = mirrors(dataset)
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for name in FILES.values():
            mirror = download_file(name, SHA256[dataset][name], sources, staging / name)
            print(f"{name}: verified, from {mirror}")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
