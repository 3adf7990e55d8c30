import gzip
import hashlib
import http.server
import threading

import pytest

from pipeline.images.fetch import DownloadError, download_file

PAYLOAD = b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03"
GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
NAME = "t10k-labels-idx1-ubyte.gz"


def mirror_with(tmp_path, folder: str, blob: bytes):
    path = tmp_path / folder
    path.mkdir()
    (path / NAME).write_bytes(blob)
    return str(path)


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_verified_file_lands_under_its_final_name(tmp_path):
    mirror = mirror_with(tmp_path, "mirror", gzip.compress(PAYLOAD))
    dest = tmp_path / "out" / NAME
    assert download_file(NAME, GOOD_SHA, [mirror], dest) == mirror
    assert gzip.decompress(dest.read_bytes()) == PAYLOAD


def test_checksum_mismatch_names_file_and_mirror_and_leaves_nothing(tmp_path):
    mirror = mirror_with(tmp_path, "mirror", gzip.compress(PAYLOAD + b"\x04"))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DownloadError) as error:
        download_file(NAME, GOOD_SHA, [mirror], out / NAME)
    assert NAME in str(error.value) and mirror in str(error.value) and "checksum mismatch" in str(error.value)
    assert leftovers(out) == []


def test_truncated_gzip_is_rejected(tmp_path):
    mirror = mirror_with(tmp_path, "mirror", gzip.compress(PAYLOAD)[:-6])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DownloadError, match="not a complete gzip file"):
        download_file(NAME, GOOD_SHA, [mirror], out / NAME)
    assert leftovers(out) == []


def test_falls_back_to_the_next_mirror(tmp_path):
    bad = mirror_with(tmp_path, "bad", gzip.compress(b"wrong"))
    good = mirror_with(tmp_path, "good", gzip.compress(PAYLOAD))
    assert download_file(NAME, GOOD_SHA, [str(tmp_path / "missing"), bad, good], tmp_path / NAME) == good


def test_http_mirror_on_loopback(tmp_path):
    served = mirror_with(tmp_path, "served", gzip.compress(PAYLOAD))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=served, **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert download_file(NAME, GOOD_SHA, [url], tmp_path / NAME) == url
    finally:
        server.shutdown()


def test_no_mirror_at_all_says_how_to_configure_one(tmp_path):
    with pytest.raises(DownloadError, match="DIGIT_RESTORE_MIRROR"):
        download_file(NAME, GOOD_SHA, [], tmp_path / NAME)
    assert leftovers(tmp_path) == []
