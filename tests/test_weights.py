"""Official checkpoints by name: download once through iopath, checksum, no half file in the cache.
A local HTTP server stands in for the official hosts (no internet here)."""
from __future__ import annotations

import hashlib
import http.server
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from pretrain import encoders, weights
from pretrain.encoders import OFFICIAL_WEIGHTS

PAYLOAD = b"checkpoint bytes " * 4096


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.hits.append(self.path)
        if self.path.endswith("/cut.pth"):  # announces the full size, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.endswith("/missing.pth"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.hits = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _official(monkeypatch, server, file: str, sha256: str | None) -> str:
    url = f"http://127.0.0.1:{server.server_address[1]}/mae/pretrain/{file}"
    entry = replace(OFFICIAL_WEIGHTS["mae_pretrain_vit_base"], url=url, sha256=sha256)
    monkeypatch.setitem(encoders.OFFICIAL_WEIGHTS, "mae_pretrain_vit_base", entry)
    return url


def _cached_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_official_name_downloads_once_and_verifies_its_checksum(tmp_path, monkeypatch, server):
    _official(monkeypatch, server, "good.pth", hashlib.sha256(PAYLOAD).hexdigest())
    first = weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))
    second = weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))
    assert first == second and Path(first).read_bytes() == PAYLOAD
    assert len(server.hits) == 1  # cached after the first download
    assert _cached_files(tmp_path) == [Path(first)]


def test_checksum_mismatch_is_refused_and_leaves_no_file(tmp_path, monkeypatch, server):
    _official(monkeypatch, server, "good.pth", "0" * 64)
    with pytest.raises(weights.ChecksumError, match="differs from the published"):
        weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))
    assert _cached_files(tmp_path) == []


def test_interrupted_download_leaves_no_half_file(tmp_path, monkeypatch, server):
    _official(monkeypatch, server, "cut.pth", None)
    with pytest.raises(weights.WeightsNotFoundError, match="could not download"):
        weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))
    assert _cached_files(tmp_path) == []


def test_unreachable_file_says_what_to_do(tmp_path, monkeypatch, server):
    _official(monkeypatch, server, "missing.pth", None)
    with pytest.raises(weights.WeightsNotFoundError, match="download the file yourself"):
        weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))


def test_official_file_without_url_names_its_source():
    with pytest.raises(weights.WeightsNotFoundError, match="Alpha-VL/ConvMAE README") as err:
        weights.resolve_weights("convmae_base")
    assert "--weights /path/to/convmae_base.pth" in str(err.value)


def test_paths_pass_and_unknown_names_list_the_official_ones(tmp_path):
    ckpt = tmp_path / "mine.pth"
    ckpt.write_bytes(b"x")
    assert weights.resolve_weights(str(ckpt)) == str(ckpt)
    with pytest.raises(weights.WeightsNotFoundError, match="mae_pretrain_vit_base"):
        weights.resolve_weights("mae_pretrian_vit_base")


def test_choose_weights_is_the_one_precedence_rule():
    from pretrain.weights import WeightsChoice, choose_weights

    assert choose_weights("a.pth", False, "mae_pretrain_vit_base") == WeightsChoice("a.pth", "--weights")
    assert choose_weights("", False, "mae_pretrain_vit_base") == WeightsChoice("mae_pretrain_vit_base", "config")
    assert choose_weights("", True, "mae_pretrain_vit_base") == WeightsChoice("", "--from-scratch")
    assert choose_weights("", False, None) == WeightsChoice("", "none")
    with pytest.raises(ValueError, match="give one of them"):
        choose_weights("a.pth", True, None)
