"""The one checkpoint package (torch + timm only; pretraining uses it, so it lives in ``pretrain``).

One module per job:
- ``errors``: CheckpointError and its kinds (CheckpointMismatchError, PartialLoadError, FormatMismatchError);
- ``files``: ``read_checkpoint`` (no code from a file runs: allow-listed ``weights_only`` torch loads, a safe
  unpickler, safetensors) and ``atomic_save``;
- ``kinds``: what a file holds (``CheckpointKind``, ``classify_checkpoint``, ``expect_kind``, ``state_dict_of``);
- ``formats``: official <-> timm <-> Hugging Face key names; ``convert``: file-to-file conversion between them;
- ``report``: the one ``LoadReport``, key-mismatch check and refusal of a partial load (``require_loaded``);
- ``mapping``: a pretraining state dict onto a module's names and shapes (prefixes, arch check, resizing);
- ``loading``: pretraining files into pretraining models (``read_state_dict``, ``load_pretrained``).
Framework adapters build on it: ``transfer.det.weights``, ``transfer.seg.checkpoint_loader``,
``transfer.cls.weights``, ``transfer.backbones.loading``; the flag that accepts a partial load is named by
the tools (``transfer.run_flags.user_error``).
"""
from .convert import InteropResult, convert_file, parse_overrides, vit_arch
from .errors import CheckpointError, CheckpointMismatchError, FormatMismatchError, PartialLoadError
from .files import SafeUnpickler, atomic_save, read_checkpoint
from .formats import (
    FORMATS, FormatReport, ViTArch, hf_config, is_hf_vit, official_to_hf, official_to_timm, timm_model_args,
    to_official,
)
from .kinds import (
    ADVICE, PRETRAINING_KINDS, PRETRAINING_PURPOSE, CheckpointKind, classify_checkpoint, describe_checkpoint,
    expect_kind, state_dict_of,
)
from .loading import load_pretrained, load_state_dict_checked, read_state_dict, state_and_source
from .mapping import OPTIONAL_KEYS, Resize, checkpoint_arch, map_state_dict, strip_prefixes
from .report import (
    KeyMismatch, LoadReport, check_fits, describe_mismatch, group_keys, key_mismatch, require_loaded,
)

__all__ = [
    "ADVICE", "FORMATS", "OPTIONAL_KEYS", "PRETRAINING_KINDS", "PRETRAINING_PURPOSE", "CheckpointError",
    "CheckpointKind", "CheckpointMismatchError", "FormatMismatchError", "FormatReport", "InteropResult",
    "KeyMismatch", "LoadReport", "PartialLoadError", "Resize", "SafeUnpickler", "ViTArch", "atomic_save",
    "check_fits", "checkpoint_arch", "classify_checkpoint", "convert_file", "describe_checkpoint",
    "describe_mismatch", "expect_kind", "group_keys", "hf_config", "is_hf_vit", "key_mismatch", "load_pretrained",
    "load_state_dict_checked", "map_state_dict", "official_to_hf", "official_to_timm", "parse_overrides",
    "read_checkpoint", "read_state_dict", "require_loaded", "state_and_source", "state_dict_of", "strip_prefixes",
    "timm_model_args", "to_official", "vit_arch",
]
