"""Downloads against a local HTTP server, and load_medmnist's cache and download path."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch

import autonas.data.medmnist as mm
from autonas.data import load_dataset, load_medmnist
from autonas.data.download import download, md5sum
from autonas.errors import DataError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path, write_npz):
    """Serve a folder holding a small MedMNIST-layout npz; yields (base_url, folder)."""
    root = tmp_path / "served"
    root.mkdir()
    write_npz(root / "tiny.npz")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/tiny.npz"


def test_download_ok(server, tmp_path):
    url, root = server
    want = md5sum(root / "tiny.npz")
    dest = tmp_path / "dl" / "tiny.npz"
    assert download(f"{url}/tiny.npz", dest, want, progress=False) == dest
    assert dest.read_bytes() == (root / "tiny.npz").read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tiny.npz"]  # no temp left


def test_download_without_md5(server, tmp_path):
    url, root = server
    dest = download(f"{url}/tiny.npz", tmp_path / "a.npz", None, progress=False)
    assert md5sum(dest) == md5sum(root / "tiny.npz")


def test_md5_mismatch_removes_download(server, tmp_path):
    url, root = server
    dest = tmp_path / "dl" / "tiny.npz"
    with pytest.raises(DataError, match="MD5 mismatch") as e:
        download(f"{url}/tiny.npz", dest, "0" * 32, progress=False)
    msg = str(e.value)
    assert "0" * 32 in msg and md5sum(root / "tiny.npz") in msg and "removed" in msg
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_unreachable_url_names_file_and_folder(closed_port_url, tmp_path):
    dest = tmp_path / "cache" / "tiny.npz"
    with pytest.raises(DataError, match="could not download") as e:
        download(closed_port_url, dest, None, timeout=5, progress=False)
    msg = str(e.value)
    assert "tiny.npz" in msg and str(dest.parent) in msg and closed_port_url in msg
    assert list(dest.parent.iterdir()) == []


def test_http_error(server, tmp_path):
    url, _ = server
    with pytest.raises(DataError, match="HTTP 404"):
        download(f"{url}/missing.npz", tmp_path / "m.npz", None, progress=False)


# ---------------------------------------------------------------- load_medmnist


@pytest.fixture
def point_at(monkeypatch):
    """Redirect load_medmnist's (url, md5, file name) seam, e.g. to the local server."""

    def _point(url: str, md5: str, filename: str = "pneumoniamnist_64.npz") -> None:
        monkeypatch.setattr(mm, "_source", lambda flag, size: (url, md5, filename))

    return _point


def test_load_medmnist_downloads_into_cache(server, point_at, tmp_path):
    url, root = server
    point_at(f"{url}/tiny.npz", md5sum(root / "tiny.npz"))
    cache = tmp_path / "cache"
    d = load_medmnist("pneumoniamnist", size=64, root=cache)
    assert (cache / "pneumoniamnist_64.npz").is_file()
    assert (cache / "pneumoniamnist_64.npz.md5ok").is_file()
    assert [len(d.train_y), len(d.val_y), len(d.test_y)] == [20, 6, 8]
    assert d.class_names == ["normal", "pneumonia"] and d.task == "binary-class"
    assert d.hflip is False and d.vflip is False  # chest X-ray policy
    assert d.info["url"] == f"{url}/tiny.npz" and d.name == "pneumoniamnist_64"


def test_load_dataset_uses_autonas_data_env(server, point_at, _isolated_cache):
    url, root = server
    point_at(f"{url}/tiny.npz", md5sum(root / "tiny.npz"))
    d = load_dataset("PneumoniaMNIST", size=64)
    assert d.info["path"] == str(_isolated_cache / "pneumoniamnist_64.npz")


def test_load_medmnist_network_failure(closed_port_url, point_at, tmp_path):
    point_at(closed_port_url, "0" * 32)
    with pytest.raises(DataError, match="could not download") as e:
        load_medmnist("pneumoniamnist", size=64, root=tmp_path / "c")
    assert "pneumoniamnist_64.npz" in str(e.value) and str(tmp_path / "c") in str(e.value)


def test_load_medmnist_md5_mismatch_on_download(server, point_at, tmp_path):
    url, _ = server
    point_at(f"{url}/tiny.npz", "f" * 32)
    with pytest.raises(DataError, match="MD5 mismatch"):
        load_medmnist("pneumoniamnist", size=64, root=tmp_path)
    assert not (tmp_path / "pneumoniamnist_64.npz").exists()


def test_offline_error_says_what_to_put_where(point_at, tmp_path):
    point_at("https://example.org/pneumoniamnist_64.npz", "a" * 32)
    with pytest.raises(DataError, match="downloading is off") as e:
        load_medmnist("pneumoniamnist", size=64, root=tmp_path, download=False)
    msg = str(e.value)
    assert "pneumoniamnist_64.npz" in msg and str(tmp_path) in msg
    assert "https://example.org/pneumoniamnist_64.npz" in msg


def test_real_source_names_follow_medmnist():
    url, md5, name = mm._source("dermamnist", 28)
    assert name == "dermamnist.npz" and url.startswith("https://") and len(md5) == 32
    assert mm._source("dermamnist", 128)[2] == "dermamnist_128.npz"


def test_cached_file_is_hashed_once(tmp_path, write_npz, point_at, monkeypatch):
    path = write_npz(tmp_path / "retinamnist.npz", n_classes=5, sizes=(10, 5, 5))
    point_at("https://invalid.example/x", md5sum(path), "retinamnist.npz")
    calls = []

    def counting(p):
        calls.append(p)
        return md5sum(p)

    monkeypatch.setattr(mm, "md5sum", counting)
    d = load_medmnist("retinamnist", root=tmp_path, download=False)
    assert len(calls) == 1
    assert d.task == "multi-class" and d.n_classes == 5 and "ordinal" in d.info["note"]
    load_medmnist("retinamnist", root=tmp_path, download=False)
    assert len(calls) == 1  # the marker made re-hashing unnecessary

    # Changing the file invalidates the marker: it is hashed again and now rejected.
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"MD5 mismatch for retinamnist\.npz") as e:
        load_medmnist("retinamnist", root=tmp_path, download=False)
    assert len(calls) == 2 and "delete it" in str(e.value)
    assert path.exists()  # a user's file is never deleted


def test_load_medmnist_tensor_layout_for_rgb(tmp_path, write_npz, point_at):
    path = write_npz(tmp_path / "bloodmnist.npz", n_classes=8, sizes=(16, 8, 8), channels=3)
    point_at("https://invalid.example/x", md5sum(path), "bloodmnist.npz")
    d = load_medmnist("bloodmnist", root=tmp_path, download=False)
    assert d.train_x.shape == (16, 3, 12, 12) and d.train_x.dtype == torch.uint8
    assert d.hflip and d.vflip


def test_unwritable_destination_is_a_data_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=r"cannot write tiny\.npz"):
        download("http://127.0.0.1:9/tiny.npz", blocker / "tiny.npz", None, progress=False)
