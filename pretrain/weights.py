"""``--weights NAME|PATH|URL`` -> a local file.

An official checkpoint name (``pretrain.encoders.OFFICIAL_WEIGHTS``) or an http(s) URL is downloaded
once through iopath's ``PathManager`` (what detectron2's checkpointer uses: it downloads to a
temporary file and renames it, so an interrupted download leaves no file under the final name) into
``$MIM_WEIGHTS_CACHE`` (default: iopath's cache, ``$FVCORE_CACHE`` or ~/.torch/iopath_cache). A
published checksum is verified after the download; a mismatching file is deleted, never used.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .encoders import OFFICIAL_WEIGHTS, OfficialWeights

logger = logging.getLogger(__name__)
_URL_PREFIXES = ("http://", "https://")


class WeightsNotFoundError(FileNotFoundError):
    """A ``--weights`` value that is neither a file, a URL nor an official checkpoint name, or an
    official checkpoint that cannot be downloaded from here."""


class ChecksumError(ValueError):
    """A downloaded checkpoint whose sha256 differs from the published one."""


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, cache_dir: str | None) -> str:
    try:
        from iopath.common.file_io import HTTPURLHandler, PathManager
    except ImportError as e:  # pretraining alone needs only torch + timm
        raise ImportError(f"downloading {url} needs iopath: pip install iopath") from e
    manager = PathManager()
    manager.register_handler(HTTPURLHandler())
    try:
        return manager.get_local_path(url, cache_dir=cache_dir)
    except OSError as e:  # urllib's URLError / ContentTooShortError are OSErrors
        raise WeightsNotFoundError(
            f"could not download {url}: {e}. Check the network, or download the file yourself and pass "
            "its path to --weights."
        ) from e


def fetch_official(weights: OfficialWeights, cache_dir: str | None = None) -> str:
    """Download (once) and verify ``weights``; returns the cached file's path."""
    if weights.url is None:
        expected = f"sha256 {weights.sha256}" if weights.sha256 else "no published checksum"
        raise WeightsNotFoundError(
            f"official checkpoint {weights.name!r} ({weights.filename}) has no direct download URL. Get it "
            f"from {weights.source}, then pass its path: --weights /path/to/{weights.filename} "
            f"(expected: {expected})."
        )
    path = _download(weights.url, cache_dir or os.environ.get("MIM_WEIGHTS_CACHE"))
    if weights.sha256:
        actual = sha256_of(path)
        if actual != weights.sha256:
            os.unlink(path)
            raise ChecksumError(
                f"{weights.url}: sha256 {actual} differs from the published {weights.sha256}; the download "
                "was deleted. Try again; if it persists the file on the server changed: report it."
            )
    else:
        logger.warning("%s: no published checksum to verify; sha256 of %s is %s", weights.name, path,
                       sha256_of(path))
    return path


def resolve_weights(spec: str, cache_dir: str | None = None) -> str:
    """A local path (checked), an official checkpoint name or an http(s) URL -> a local file."""
    if spec in OFFICIAL_WEIGHTS:
        return fetch_official(OFFICIAL_WEIGHTS[spec], cache_dir)
    if spec.startswith(_URL_PREFIXES):
        return _download(spec, cache_dir or os.environ.get("MIM_WEIGHTS_CACHE"))
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path)
    raise WeightsNotFoundError(
        f"--weights {spec!r}: no such file, and not an official checkpoint name. Pass a checkpoint file, "
        f"an http(s) URL, or one of: {', '.join(sorted(OFFICIAL_WEIGHTS))}."
    )


@dataclass(frozen=True)
class WeightsChoice:
    """What a transfer run starts from: ``spec`` (a name, path or URL for ``resolve_weights``; "" for
    random initialisation) and where the choice came from: '--weights', 'config', '--from-scratch' or
    'none' (the config names no checkpoint)."""

    spec: str
    source: str


def choose_weights(weights: str, from_scratch: bool, configured: str | None) -> WeightsChoice:
    """The one rule both transfer tools follow: ``--weights`` replaces the checkpoint the config names,
    ``--from-scratch`` starts without one; the two together are refused (ValueError)."""
    if weights and from_scratch:
        raise ValueError("--from-scratch starts from random initialisation, --weights from a checkpoint: "
                         "give one of them")
    if from_scratch:
        return WeightsChoice("", "--from-scratch")
    if weights:
        return WeightsChoice(weights, "--weights")
    return WeightsChoice(configured, "config") if configured else WeightsChoice("", "none")
