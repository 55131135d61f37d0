"""Reading and writing checkpoint files; nothing in a file a user passes in is ever executed (torch only).

* torch files (``torch.save``, zip or legacy format) load with ``weights_only=True`` plus an allow-list
  of the few classes that our tools and the frameworks write besides tensors: numpy arrays and scalars
  (RNG states, mmengine's log buffers), ``argparse.Namespace`` (the ``args`` of the official MAE /
  ConvMAE / SIM training checkpoints) and mmengine's ``HistoryBuffer`` (with a ``getattr`` that returns
  only that class's statistics methods, the one use mmengine's checkpoints make of it). Names outside the
  allow-list are found by a static scan of the pickle before anything is unpickled, and the file is
  refused naming them.
* plain pickles (detectron2's released ``.pkl`` models: ``{'model': {name: ndarray}, '__author__': ...}``)
  go through ``SafeUnpickler``, which resolves only numpy's array reconstruction and plain containers.
* ``.safetensors`` files (timm's and Hugging Face's releases) are read by the ``safetensors`` package
  (a JSON header and raw tensor bytes: no pickle at all); they are recognised by their header, not
  their name.
"""
from __future__ import annotations

import argparse
import collections
import importlib
import inspect
import os
import pickle
import re
from typing import Any, Iterable

import numpy as np
import torch

from pretrain.run_dir import atomic_write

from .errors import CheckpointError

__all__ = ["SafeUnpickler", "atomic_save", "read_checkpoint"]

# ---------------------------------------------------------------------------------------- reading
TORCH_ZIP_MAGIC = b"PK\x03\x04"
# torch.save's legacy (non-zip) format starts with the pickle of its magic number 0x1950a86a20f9469cfc6c
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

# numpy's array / scalar reconstruction, under numpy 1.x and 2.x module names
_NUMPY_GLOBALS = {
    f"{mod}.{name}": obj
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name, obj in (("_reconstruct", np.core.multiarray._reconstruct), ("scalar", np.core.multiarray.scalar))
}
_NUMPY_GLOBALS.update({"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype})
# dtype classes are built (BUILD opcode) when numpy dtypes unpickle: numbers and bools, never object
_NUMPY_DTYPE_CLASSES = sorted({type(np.dtype(c)) for c in "?bBhHiIlLqQefdFD"}, key=lambda t: t.__name__)

HISTORY_BUFFER = "mmengine.logging.history_buffer.HistoryBuffer"


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as mmengine's training checkpoints use it, and nothing else: a ``HistoryBuffer`` stores
    its statistics methods (``min``, ``max``, ``current``, ``mean``) in its state, pickled as
    ``getattr(HistoryBuffer, 'min')``. Only public functions defined on that class are returned."""
    if (isinstance(obj, type) and f"{obj.__module__}.{obj.__qualname__}" == HISTORY_BUFFER
            and not name.startswith("_") and inspect.isfunction(vars(obj).get(name))):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f"getattr({obj!r}, {name!r}) is not allowed (only HistoryBuffer's statistics)")


# torch files: globals beyond torch's own weights-only set, by the name a pickle uses. Entries given as
# (module, attribute) are imported only when a file names them (frameworks that may not be installed).
TORCH_EXTRA_GLOBALS: dict[str, Any] = {
    **_NUMPY_GLOBALS,
    **{f"numpy.dtypes.{t.__name__}": t for t in _NUMPY_DTYPE_CLASSES},
    "argparse.Namespace": argparse.Namespace,  # 'args' of the official MAE / ConvMAE / SIM checkpoints
    HISTORY_BUFFER: ("mmengine.logging.history_buffer", "HistoryBuffer"),  # mmengine's MessageHub state
    "builtins.getattr": _history_buffer_getattr,  # ... and its statistics methods, nothing else
}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of Python 3 use it for ``bytes`` (numpy array buffers):
    latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"global '_codecs.encode' is not allowed with encoding {encoding!r}")
    return text.encode("latin1")


# plain pickles: numpy arrays and plain containers only
PICKLE_GLOBALS: dict[str, Any] = {
    **_NUMPY_GLOBALS, "collections.OrderedDict": collections.OrderedDict, "_codecs.encode": _latin1_encode,
}


class SafeUnpickler(pickle.Unpickler):
    """A pickle reader that resolves only ``PICKLE_GLOBALS`` (numpy arrays, OrderedDict); any other
    global (``os.system``, ``builtins.eval``, a class with a ``__reduce__``) raises UnpicklingError before
    it could be called."""

    def find_class(self, module: str, name: str):
        obj = PICKLE_GLOBALS.get(f"{module}.{name}")
        if obj is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")
        return obj


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file. Check the path (or pass an official checkpoint name).")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is a directory, not a checkpoint file; pass the file inside it.")
    if os.path.getsize(path) == 0:
        raise CheckpointError(
            f"{path} is empty (0 bytes): an interrupted download or copy? Download or copy it again."
        )


def _refused(path: str, names: Iterable[str]) -> CheckpointError:
    return CheckpointError(
        f"{path} was refused: its pickle names {sorted(set(names))}, which a checkpoint of tensors does not need "
        "and which could run code when loaded; nothing from it was executed. Only load weights from sources "
        "you trust; if you wrote this file yourself, save just its tensors "
        "(torch.save({'model': model.state_dict()}, path))."
    )


def _unreadable(path: str, what: str, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"{path} could not be read ({what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
        "Expected a checkpoint written by torch.save, a .safetensors file or a detectron2 .pkl model; if it is a "
        "download, it may be truncated: download it again."
    )


def _resolve_globals(names: Iterable[str]) -> list:
    """``torch.serialization.safe_globals`` entries for the allowed names among ``names``."""
    out = []
    for name in names:
        obj = TORCH_EXTRA_GLOBALS.get(name)
        if isinstance(obj, tuple):
            try:
                obj = getattr(importlib.import_module(obj[0]), obj[1])
            except ImportError as exc:
                raise CheckpointError(f"reading this file needs {obj[0]} ({exc}); install it") from exc
        if obj is not None:
            out.append((obj, name))
    return out


def _torch_load(path: str, zipped: bool, mmap: bool = False) -> Any:
    static = [(obj, name) for name, obj in TORCH_EXTRA_GLOBALS.items() if not isinstance(obj, tuple)]
    if zipped:
        try:
            with torch.serialization.safe_globals(static):
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt archive
            raise _unreadable(path, "not a complete torch zip archive", exc) from None
        refused = [n for n in unsafe if n not in TORCH_EXTRA_GLOBALS]
        if refused:
            raise _refused(path, refused)
        allowed = static + _resolve_globals(n for n in unsafe if isinstance(TORCH_EXTRA_GLOBALS[n], tuple))
    else:
        allowed = static
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipped)
    except pickle.UnpicklingError as exc:
        found = re.findall(r"(?:GLOBAL |got <class ')([\w.]+)", str(exc))
        found += re.findall(r"(getattr\(.*\)) is not allowed", str(exc))
        if "Weights only load failed" in str(exc):
            raise _refused(path, found or ["a global outside the allow-list"]) from None
        raise _unreadable(path, "broken pickle", exc) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise _unreadable(path, "truncated or corrupt torch file", exc) from None


def _pickle_load(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        if "is not allowed" in str(exc):
            raise _refused(path, re.findall(r"global '([^']+)'", str(exc))) from None
        what = "truncated pickle" if "truncated" in str(exc) else "not a pickle or a torch file"
        raise _unreadable(path, what, exc) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
        raise _unreadable(path, "truncated or corrupt pickle", exc) from None


def _is_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then the JSON header ('{')."""
    return len(head) > 8 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size


def _safetensors_load(path: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, "truncated or corrupt safetensors file", exc) from None


def read_checkpoint(path: str | os.PathLike, mmap: bool = False) -> Any:
    """The object stored in a checkpoint file, read without running code from it (see the module doc).
    ``mmap``: a zip-format torch file's tensors are mapped, not read (a look at the keys or shapes,
    e.g. to classify a file that a framework then loads itself, costs almost no IO or memory).

    Raises CheckpointError for a missing, empty, truncated, non-checkpoint or unsafe file."""
    path = os.fspath(path)
    _check_file(path)
    with open(path, "rb") as f:
        head = f.read(len(TORCH_LEGACY_MAGIC))
    if head.startswith(TORCH_ZIP_MAGIC):
        return _torch_load(path, zipped=True, mmap=mmap)
    if head == TORCH_LEGACY_MAGIC:
        return _torch_load(path, zipped=False)
    if _is_safetensors(head, os.path.getsize(path)):
        return _safetensors_load(path)
    return _pickle_load(path)  # detectron2 .pkl models, and anything else (refused unless a plain pickle)


# ---------------------------------------------------------------------------------------- writing
def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, fsync, then os.replace
    (``pretrain.run_dir.atomic_write``): a reader never sees a partial file, even when the writer is
    killed mid-save."""
    atomic_write(os.fspath(path), lambda f: torch.save(obj, f))
