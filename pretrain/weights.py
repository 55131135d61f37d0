"""``--weights NAME|PATH|URL`` -> a local file (torch and the standard library only).

An official checkpoint name (``pretrain.encoders.OFFICIAL_WEIGHTS``, detectron2's
``detectron2://ImageNetPretrained/MAE/...`` names among them), any other ``detectron2://`` path (mapped
to the URL detectron2's own handler uses) or an http(s) URL is downloaded once into the cache,
``$MIM_WEIGHTS_CACHE`` (default: ``$FVCORE_CACHE`` or ~/.torch/iopath_cache, the folder detectron2 and
iopath use, under the same URL path, so their downloads are found too).

A download goes to a temporary file next to its final name and is renamed only when complete and
verified: a body shorter than its Content-Length (a dropped connection) or a checksum that differs
from the published one (md5 prefix or sha256) deletes the temporary file and raises, so the final name
never holds a partial or wrong file. (``torch.hub.download_url_to_file`` renames a short body without
error when it is given no hash, and checks only sha256 prefixes, while MAE and detectron2 publish md5
prefixes and SIM no checksum: hence this small loop.)
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .encoders import DETECTRON2_URL_PREFIX, OFFICIAL_WEIGHTS, OfficialWeights

logger = logging.getLogger(__name__)
_URL_PREFIXES = ("http://", "https://")
DETECTRON2_SCHEME = "detectron2://"
_CHUNK = 1 << 20


class WeightsNotFoundError(FileNotFoundError):
    """A ``--weights`` value that is neither a file, a URL nor an official checkpoint name, or an
    official checkpoint that cannot be downloaded from here."""


class ChecksumError(WeightsNotFoundError):
    """A downloaded checkpoint whose checksum differs from the published one (the download is deleted):
    the verified file cannot be had from here."""


def weights_cache_dir(cache_dir: str | None = None) -> str:
    """``cache_dir``, else $MIM_WEIGHTS_CACHE, else $FVCORE_CACHE, else ~/.torch/iopath_cache."""
    chosen = cache_dir or os.environ.get("MIM_WEIGHTS_CACHE") or os.environ.get("FVCORE_CACHE")
    return os.path.expanduser(chosen or "~/.torch/iopath_cache")


def cached_path(url: str, cache_dir: str | None = None) -> str:
    """Where ``url`` is cached: the cache folder + the URL's path (iopath's layout), query dropped."""
    return os.path.join(weights_cache_dir(cache_dir), urlparse(url).path.lstrip("/"))


def _checks(entry: OfficialWeights | None, md5: str, sha256: str) -> str | None:
    """None when the digests match what ``entry`` publishes, else what differs."""
    if entry is None:
        return None
    if entry.md5_prefix and not md5.startswith(entry.md5_prefix):
        return f"md5 {md5} does not start with the published prefix {entry.md5_prefix}"
    if entry.sha256 and sha256 != entry.sha256:
        return f"sha256 {sha256} differs from the published {entry.sha256}"
    return None


def download(url: str, dst: str, entry: OfficialWeights | None = None) -> None:
    """Stream ``url`` into a temporary file beside ``dst``; check its length and ``entry``'s published
    checksum; rename it to ``dst``. Raises WeightsNotFoundError (network, HTTP error, short body) or
    ChecksumError, leaving no file behind."""
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(dst) + ".", suffix=".partial", dir=os.path.dirname(dst) or ".")
    md5, sha256, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "mimtoolkit"})
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(request) as r:
            expected = r.headers.get("Content-Length")
            logger.info("downloading %s (%s bytes) -> %s", url, expected or "?", dst)
            while block := r.read(_CHUNK):
                f.write(block)
                md5.update(block)
                sha256.update(block)
                size += len(block)
        if expected is not None and size != int(expected):
            raise WeightsNotFoundError(f"could not download {url}: the connection ended after {size} of {expected} "
                                       "bytes. Try again, or download the file yourself and pass its path to --weights.")
        problem = _checks(entry, md5.hexdigest(), sha256.hexdigest())
        if problem:
            raise ChecksumError(f"{url}: {problem}; the download was deleted. Try again; if it persists, the file "
                                "on the server changed: report it.")
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, WeightsNotFoundError):  # URLError, HTTPError, disk full
            raise WeightsNotFoundError(f"could not download {url}: {e}. Check the network, or download the file "
                                       "yourself and pass its path to --weights.") from e
        raise
    if entry is None or not (entry.md5_prefix or entry.sha256):
        logger.warning("%s: no published checksum to verify; md5 %s, sha256 %s", url, md5.hexdigest(),
                       sha256.hexdigest())
    os.replace(tmp, dst)


def official_entry(spec: str) -> OfficialWeights | None:
    """The ``OFFICIAL_WEIGHTS`` entry ``spec`` names (detectron2's ``?matching_heuristics=True`` suffix
    ignored), or, for another ``detectron2://`` path, an entry for the URL detectron2 maps it to."""
    name = spec.split("?", 1)[0] if spec.startswith(DETECTRON2_SCHEME) else spec
    if name in OFFICIAL_WEIGHTS:
        return OFFICIAL_WEIGHTS[name]
    if name.startswith(DETECTRON2_SCHEME):
        path = name[len(DETECTRON2_SCHEME):]
        return OfficialWeights(name, os.path.basename(path), DETECTRON2_URL_PREFIX + path,
                               "detectron2's file host (detectron2/utils/file_io.py Detectron2Handler)")
    return None


def names_a_download(spec: str) -> bool:
    """Whether ``resolve_weights`` would download ``spec`` (an official or detectron2:// name, a URL)."""
    return official_entry(spec) is not None or spec.startswith(_URL_PREFIXES)


def fetch_official(weights: OfficialWeights, cache_dir: str | None = None) -> str:
    """Download (once) and verify ``weights``; returns the cached file's path."""
    if weights.url is None:
        expected = f"md5 prefix {weights.md5_prefix}" if weights.md5_prefix else "no published checksum"
        raise WeightsNotFoundError(
            f"official checkpoint {weights.name!r} ({weights.filename}) has no direct download URL. Get it "
            f"from {weights.source}, then pass its path: --weights /path/to/{weights.filename} "
            f"(expected: {expected})."
        )
    return _fetch(weights.url, cache_dir, weights)


def _fetch(url: str, cache_dir: str | None, entry: OfficialWeights | None) -> str:
    path = cached_path(url, cache_dir)
    if not os.path.isfile(path):  # a file under the final name was complete and verified when renamed
        download(url, path, entry)
    return path


def resolve_weights(spec: str, cache_dir: str | None = None) -> str:
    """A local path (checked), an official or detectron2:// name or an http(s) URL -> a local file."""
    entry = official_entry(spec)
    if entry is not None:
        return fetch_official(entry, cache_dir)
    if spec.startswith(_URL_PREFIXES):
        return _fetch(spec, cache_dir, None)
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path)
    raise WeightsNotFoundError(
        f"--weights {spec!r}: no such file, and not an official checkpoint name. Pass a checkpoint file, "
        f"an http(s) or detectron2:// URL, or one of: {', '.join(sorted(OFFICIAL_WEIGHTS))} (docs/WEIGHTS.md)."
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
