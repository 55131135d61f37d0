"""Official checkpoints by name: download once (standard library + torch only), published checksums
(md5 prefix / sha256), no half or wrong file in the cache, detectron2:// names.
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


def _official(monkeypatch, server, file: str, md5_prefix: str | None = None, sha256: str | None = None) -> str:
    url = f"http://127.0.0.1:{server.server_address[1]}/mae/pretrain/{file}"
    entry = replace(OFFICIAL_WEIGHTS["mae_pretrain_vit_base"], url=url, md5_prefix=md5_prefix, sha256=sha256)
    monkeypatch.setitem(encoders.OFFICIAL_WEIGHTS, "mae_pretrain_vit_base", entry)
    return url


def _cached_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_official_name_downloads_once_and_verifies_its_md5_prefix(tmp_path, monkeypatch, server):
    _official(monkeypatch, server, "good.pth", md5_prefix=hashlib.md5(PAYLOAD).hexdigest()[:6])
    first = weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))
    second = weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))
    assert first == second and Path(first).read_bytes() == PAYLOAD
    assert len(server.hits) == 1  # cached after the first download
    assert _cached_files(tmp_path) == [Path(first)]
    assert Path(first).relative_to(tmp_path) == Path("mae/pretrain/good.pth")  # iopath's cache layout


@pytest.mark.parametrize("published", [dict(md5_prefix="8cad7c"), dict(sha256="0" * 64)])
def test_checksum_mismatch_is_deleted_and_refused(tmp_path, monkeypatch, server, published):
    _official(monkeypatch, server, "good.pth", **published)
    with pytest.raises(weights.ChecksumError):
        weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))
    assert _cached_files(tmp_path) == []
    with pytest.raises(weights.ChecksumError):  # refused again: nothing wrong was kept under the final name
        weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))
    assert len(server.hits) == 2


def test_cache_folder_comes_from_the_environment(tmp_path, monkeypatch, server):
    _official(monkeypatch, server, "good.pth")
    monkeypatch.setenv("MIM_WEIGHTS_CACHE", str(tmp_path / "mim"))
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "fvcore"))
    assert weights.resolve_weights("mae_pretrain_vit_base").startswith(str(tmp_path / "mim"))
    monkeypatch.delenv("MIM_WEIGHTS_CACHE")
    assert weights.resolve_weights("mae_pretrain_vit_base").startswith(str(tmp_path / "fvcore"))


def test_detectron2_names_map_to_detectron2s_file_host(tmp_path, monkeypatch, server):
    name = "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_base.pth"
    for spec in (name, name + "?matching_heuristics=True"):  # as detectron2's ViTDet configs write it
        entry = weights.official_entry(spec)
        assert entry.url == "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MAE/mae_pretrain_vit_base.pth"
        assert weights.names_a_download(spec)
    host = f"http://127.0.0.1:{server.server_address[1]}/detectron2/"
    monkeypatch.setattr(weights, "DETECTRON2_URL_PREFIX", host)  # any other detectron2:// path, as detectron2 maps it
    path = weights.resolve_weights("detectron2://ImageNetPretrained/other/good.pth", cache_dir=str(tmp_path))
    assert Path(path).read_bytes() == PAYLOAD and server.hits == ["/detectron2/ImageNetPretrained/other/good.pth"]
    assert not weights.names_a_download("mae_pretrian_vit_base")


def test_interrupted_download_leaves_no_half_file(tmp_path, monkeypatch, server):
    _official(monkeypatch, server, "cut.pth")  # no checksum: the length alone shows the cut
    with pytest.raises(weights.WeightsNotFoundError):
        weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))
    assert _cached_files(tmp_path) == []


def test_unreachable_file_says_what_to_do(tmp_path, monkeypatch, server):
    _official(monkeypatch, server, "missing.pth")
    with pytest.raises(weights.WeightsNotFoundError, match="--weights"):  # pass the file yourself
        weights.resolve_weights("mae_pretrain_vit_base", cache_dir=str(tmp_path))


def test_official_file_without_url_names_its_source():
    with pytest.raises(weights.WeightsNotFoundError, match="Alpha-VL/ConvMAE"):
        weights.resolve_weights("convmae_base")


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
    with pytest.raises(ValueError, match="--from-scratch"):
        choose_weights("a.pth", True, None)


# what the authors publish, read from their repositories (facebookresearch/mae README.md and FINETUNE.md md5
# rows; OpenGVLab/Siamese-Image-Modeling docs/checkpoints.md; detectron2 ViTDet README file names)
PUBLISHED = {
    "mae_pretrain_vit_base": ("https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth", "8cad7c"),
    "mae_pretrain_vit_large": ("https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_large.pth", "b8b06e"),
    "mae_pretrain_vit_huge": ("https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_huge.pth", "9bdbb0"),
    "mae_finetuned_vit_base": ("https://dl.fbaipublicfiles.com/mae/finetune/mae_finetuned_vit_base.pth", "1b25e9"),
    "mae_finetuned_vit_large": ("https://dl.fbaipublicfiles.com/mae/finetune/mae_finetuned_vit_large.pth", "51f550"),
    "mae_finetuned_vit_huge": ("https://dl.fbaipublicfiles.com/mae/finetune/mae_finetuned_vit_huge.pth", "2541f2"),
    "sim_vit_base": ("https://github.com/OpenGVLab/Siamese-Image-Modeling/releases/download/v1.0/"
                     "sim_base_1600ep_pretrain.pth", None),
    "sim_finetuned_vit_base": ("https://github.com/OpenGVLab/Siamese-Image-Modeling/releases/download/v1.0/"
                               "sim_base_1600ep_finetune.pth", None),
    "vitdet_mae_b_100ep": ("https://dl.fbaipublicfiles.com/detectron2/ViTDet/COCO/mask_rcnn_vitdet_b/f325346929/"
                           "model_final_61ccd1.pkl", "61ccd1"),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_table_holds_the_published_url_and_checksum(name):
    url, md5_prefix = PUBLISHED[name]
    assert (OFFICIAL_WEIGHTS[name].url, OFFICIAL_WEIGHTS[name].md5_prefix) == (url, md5_prefix)


def test_docs_table_lists_every_name_with_its_url_and_checksum():
    rows = [line for line in (Path(__file__).parents[1] / "docs" / "WEIGHTS.md").read_text().splitlines()
            if line.startswith("| `")]
    assert len(rows) == len(OFFICIAL_WEIGHTS)
    for w in OFFICIAL_WEIGHTS.values():
        row = next(r for r in rows if r.startswith(f"| `{w.name}`"))
        assert (w.url or "no direct link") in row and (w.md5_prefix or w.sha256 or "none published") in row
