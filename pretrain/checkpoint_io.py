"""The one place that reads, classifies and writes checkpoint files (torch only).

Every tool reads a file a user passes in through ``read_checkpoint``; nothing in such a file is ever
executed:

* torch files (``torch.save``, zip or legacy format) load with ``weights_only=True`` plus an allow-list
  of the few classes that our tools and the frameworks write besides tensors: numpy arrays and scalars
  (RNG states, mmengine's log buffers), ``argparse.Namespace`` (the ``args`` of the official MAE /
  ConvMAE / SIM training checkpoints) and mmengine's ``HistoryBuffer`` (with a ``getattr`` that returns
  only that class's statistics methods, the one use mmengine's checkpoints make of it). Names outside the allow-list are
  found by a static scan of the pickle before anything is unpickled, and the file is refused naming them.
* plain pickles (detectron2's released ``.pkl`` models: ``{'model': {name: ndarray}, '__author__': ...}``)
  go through ``SafeUnpickler``, which resolves only numpy's array reconstruction and plain containers.
* ``.safetensors`` files (timm's and Hugging Face's releases) are read by the ``safetensors`` package
  (a JSON header and raw tensor bytes: no pickle at all); they are recognised by their header, not
  their name.

``classify_checkpoint`` names what a file holds (``CheckpointKind``) from its keys, and
``expect_kind`` turns a file of the wrong kind into an error that says what to do with it.
"""
from __future__ import annotations

import argparse
import collections
import enum
import importlib
import inspect
import os
import pickle
import re
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from pretrain.run_dir import atomic_write

__all__ = [
    "ADVICE", "CheckpointError", "CheckpointKind", "SafeUnpickler", "atomic_save", "classify_checkpoint", "describe_checkpoint",
    "expect_kind", "read_checkpoint", "require_loaded", "state_dict_of",
]

EXPORT_HINT = "python tools/train_mim.py --export {path} --output encoder.pth"
PARTIAL_FLAG = "--allow-partial-weights"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: the message names the file, what is wrong and what to do."""


# ---------------------------------------------------------------------------------------- kinds
class CheckpointKind(enum.Enum):
    MAE = "MAE pretraining checkpoint (encoder + decoder)"
    CONVMAE = "ConvMAE pretraining checkpoint"
    SIM = "SIM pretraining checkpoint"
    ENCODER = "ViT encoder (MAE / SIM encoder-only release, or tools/train_mim.py --export)"
    DETECTRON2 = "detectron2 detector checkpoint"
    MMSEG = "mmseg segmentor checkpoint"
    MMSEG_VIT_BACKBONE = ("ViT backbone in mmseg's key names (layers.N.ln1, ...; mmseg's beit2mmseg / vit2mmseg "
                          "converters, mmpretrain)")
    HF_VIT = ("ViT / ViT-MAE in Hugging Face transformers' names (ViTMAEModel / ViTMAEForPreTraining: "
              "vit.embeddings.*, encoder.layer.N or layers.N)")
    TRAINING_STATE = "tools/train_mim.py training checkpoint (model + optimizer + RNG state)"
    UNKNOWN = "unrecognised checkpoint"

    @property
    def is_pretraining(self) -> bool:
        """A pretraining file of an encoder (what a backbone is initialised from)."""
        return self in (CheckpointKind.MAE, CheckpointKind.CONVMAE, CheckpointKind.SIM, CheckpointKind.ENCODER,
                        CheckpointKind.HF_VIT)


# what to do with a file of each kind when a tool expected another one
ADVICE = {
    CheckpointKind.TRAINING_STATE: "export its encoder first, then pass encoder.pth: " + EXPORT_HINT,
    CheckpointKind.DETECTRON2: "pass it to tools/train_det.py --weights (or tools/visualize.py det --weights)",
    CheckpointKind.MMSEG: "pass it to tools/train_seg.py --weights (or tools/visualize.py seg --weights)",
    CheckpointKind.MMSEG_VIT_BACKBONE: "pass it to tools/train_seg.py --weights (it converts mmseg's ViT names)",
    CheckpointKind.UNKNOWN: (
        "pass an official MAE / ConvMAE / SIM pretraining checkpoint, an encoder.pth of tools/train_mim.py, "
        "or a detectron2 / mmseg checkpoint of a whole model"
    ),
}
for _kind in CheckpointKind:
    ADVICE.setdefault(_kind, "pass it where pretraining checkpoints are read: tools/train_det.py / "
                             "tools/train_seg.py --weights, or tools/convert_checkpoint.py")

# keys only a whole fine-tuned model has
DETECTOR_MARKERS = ("roi_heads.", "proposal_generator.")
SEGMENTOR_MARKERS = ("decode_head.", "auxiliary_head.")
# mmseg's / mmpretrain's ViT block names (a backbone-only file, e.g. mmseg's beit2mmseg output, which also
# keeps copies of some official names, patch_embed.proj.*: checked before those)
MMSEG_VIT_BLOCK = re.compile(r"(^|\.)layers\.\d+\.ln1\.")
# Hugging Face transformers' ViT / ViTMAE names, 4.x and 5.x (pretrain.checkpoint_formats maps them to ours)
HF_VIT_MARKER = re.compile(
    r"(^|\.)(embeddings\.patch_embeddings\.|encoder\.layer\.\d+\.attention\.|layers\.\d+\.attention\.[qkvo]_proj)"
)
TRAINING_STATE_KEYS = {"model", "optimizer", "config", "rng"}  # pretrain.engine.train's checkpoint_now
STATE_DICT_KEYS = ("model", "state_dict", "module")


def _state_mapping(obj: Any) -> Mapping | None:
    """The mapping of parameter names in ``obj`` (``obj['model' | 'state_dict' | 'module']`` or ``obj``)."""
    if not isinstance(obj, Mapping):
        return None
    for key in STATE_DICT_KEYS:
        if isinstance(obj.get(key), Mapping):
            return obj[key]
    return obj


def classify_checkpoint(obj: Any) -> CheckpointKind:
    """What a loaded checkpoint holds, from its key names (official names = ours; wrapper prefixes such as
    ``module.`` or a converted file's ``backbone.net.net.`` do not matter)."""
    if isinstance(obj, Mapping) and TRAINING_STATE_KEYS <= set(obj):
        return CheckpointKind.TRAINING_STATE
    state = _state_mapping(obj)
    keys = [str(k) for k in state] if state is not None else []
    if not keys:
        return CheckpointKind.UNKNOWN
    if any(k.startswith(DETECTOR_MARKERS) for k in keys):
        return CheckpointKind.DETECTRON2
    if any(k.startswith(SEGMENTOR_MARKERS) for k in keys):
        return CheckpointKind.MMSEG
    if any(MMSEG_VIT_BLOCK.search(k) for k in keys):
        return CheckpointKind.MMSEG_VIT_BACKBONE
    if any(HF_VIT_MARKER.search(k) for k in keys):
        return CheckpointKind.HF_VIT
    dotted = ["." + k for k in keys]
    if any(".blocks3." in k or ".patch_embed1." in k for k in dotted):
        return CheckpointKind.CONVMAE
    if any(re.search(r"\.(mm_|projector_decoder_blocks\.|predictor_decoder_blocks\.)", k) for k in dotted):
        return CheckpointKind.SIM
    if any(".decoder_blocks." in k for k in dotted):
        return CheckpointKind.MAE
    if any(".blocks." in k or k.endswith(".patch_embed.proj.weight") for k in dotted):
        return CheckpointKind.ENCODER
    return CheckpointKind.UNKNOWN


def expect_kind(obj: Any, path: str | os.PathLike, accepted: Iterable[CheckpointKind], purpose: str) -> CheckpointKind:
    """The kind of ``obj``; raises CheckpointError saying what to do when it is not one of ``accepted``.
    ``purpose`` completes 'expected ...', e.g. 'a pretraining checkpoint of the backbone'."""
    kind = classify_checkpoint(obj)
    if kind in set(accepted):
        return kind
    found = kind.value
    if kind is CheckpointKind.UNKNOWN:
        state = _state_mapping(obj)
        found += f" (first keys: {[str(k) for k in state][:5]})" if state else f" (a {type(obj).__name__})"
    advice = ADVICE[kind].format(path=path)
    raise CheckpointError(f"{path}: expected {purpose}, found a {found}; {advice}")


def describe_checkpoint(obj: Any, path: str | os.PathLike) -> str:
    """One line for the log: the file, its kind and how many tensors it holds."""
    kind = classify_checkpoint(obj)
    state = _state_mapping(obj) or {}
    n = sum(isinstance(v, (torch.Tensor, np.ndarray)) for v in state.values())
    author = f", written by {obj['__author__']}" if isinstance(obj, Mapping) and "__author__" in obj else ""
    return f"{path}: {kind.value}, {n} tensors{author}"


def state_dict_of(obj: Any, path: str | os.PathLike = "checkpoint") -> dict[str, torch.Tensor]:
    """The parameter dict of a checkpoint (``['model' | 'state_dict' | 'module']`` or the object), numpy
    arrays (detectron2 ``.pkl`` files) as tensors. Raises CheckpointError when there is none."""
    state = _state_mapping(obj)
    if state is None or not state:
        raise CheckpointError(
            f"{path} holds no state dict (a {type(obj).__name__}); expected {{'model': state_dict}}, "
            "{'state_dict': ...} or a plain state dict of tensors"
        )
    out, bad = {}, []
    for key, value in state.items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            value = torch.from_numpy(np.ascontiguousarray(value))
        if isinstance(value, torch.Tensor):
            out[str(key)] = value
        else:
            bad.append(f"{key} ({type(value).__name__})")
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} entries of its state dict are not tensors, first: {bad[:3]}; expected a state dict "
            f"of tensors. {ADVICE[classify_checkpoint(obj)].format(path=path)}"
        )
    return out


def require_loaded(left_at_init: list[str], source: str | os.PathLike, allow_partial: bool,
                   expected_note: str = "", flag: str = PARTIAL_FLAG) -> None:
    """Raise CheckpointError naming the backbone parameters that a load left at their initial values
    (``left_at_init``, already without the ones that are expected to be missing), unless the user
    asked for it (``allow_partial``)."""
    if not left_at_init or allow_partial:
        return
    groups = collections.Counter(re.sub(r"\.\d+(?=\.|$)", ".*", k) for k in left_at_init)
    named = ", ".join(f"{k} ({n})" for k, n in sorted(groups.items())[:8])
    more = f" (+{len(groups) - 8} more groups)" if len(groups) > 8 else ""
    raise CheckpointError(
        f"{source} leaves {len(left_at_init)} backbone parameters at their initial values, first: "
        f"{', '.join(left_at_init[:4])}; by name: {named}{more}. "
        f"Is it a checkpoint of another model, or in a layout this tool does not map?{expected_note} "
        f"Pass {flag} to train from a partially loaded backbone anyway."
    )


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
