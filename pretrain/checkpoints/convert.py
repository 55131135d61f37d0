"""File-to-file conversion between the official MAE / SIM checkpoint format (what every tool of this
project reads) and timm's / Hugging Face's (``tools/convert_checkpoint.py --to official|timm|hf``).
torch + timm's ``safetensors`` only; the key maps are ``formats``.

* ``official``: a timm / Hugging Face (or official) file -> ``{'model': state}`` in the official names.
* ``timm``: the encoder in timm's ``VisionTransformer`` names, ``.safetensors`` (or a torch file for any
  other suffix), for ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=OUT))``.
* ``hf``: a folder with ``config.json`` + ``model.safetensors`` for ``ViTMAEForPreTraining`` (files with
  MAE's decoder) / ``ViTMAEModel`` ``.from_pretrained(OUT)``.

The head count of a ViT is in no tensor's shape: it comes from the encoder table
(``pretrain.encoders.ENCODERS``), matched on the file's shapes or named with ``encoder=``.
ConvMAE has no timm or Hugging Face counterpart and is refused.
"""
from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

import torch

from pretrain.encoders import ENCODERS, encoder
from pretrain.run_dir import atomic_write

from .errors import FormatMismatchError
from .files import atomic_save, read_checkpoint
from .formats import FORMATS, ViTArch, hf_config, official_to_hf, official_to_timm, timm_model_args, to_official
from .kinds import PRETRAINING_KINDS, CheckpointKind, classify_checkpoint, expect_kind, state_dict_of

__all__ = ["InteropResult", "convert_file", "parse_overrides", "vit_arch"]

PURPOSE = "an MAE / SIM ViT checkpoint (official, ours, timm's or Hugging Face's)"


@dataclass
class InteropResult:
    """What ``convert_file`` wrote: the output, the encoder whose sizes were used, the conversion
    reports and how to load the output."""

    source: str
    output: str
    fmt: str
    encoder: str | None = None
    reports: list[str] = field(default_factory=list)
    load_with: str = ""

    def summary(self) -> str:
        lines = [f"input:   {self.source}", f"encoder: {self.encoder or 'not needed'}"]
        lines += [f"names:   {r}" for r in self.reports]
        return "\n".join(lines + [f"wrote {self.fmt}: {self.output}", f"load:    {self.load_with}"])


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    return len({k.split(".")[1] for k in state if k.startswith(prefix + ".")})


def _built(name: str, overrides: dict) -> torch.nn.Module:
    from pretrain.models import build_model  # builds on the meta device: sizes only, no memory

    with torch.device("meta"):
        return build_model(name, **overrides)


def _shape_of(model_or_state) -> tuple:
    """(embed_dim, depth, patch, pos_embed length) of a model or an official state dict."""
    state = model_or_state if isinstance(model_or_state, Mapping) else model_or_state.state_dict()
    w = state["patch_embed.proj.weight"]
    return int(w.shape[0]), _count(state, "blocks"), int(w.shape[-1]), int(state["pos_embed"].shape[1])


def _match_encoder(state: Mapping[str, torch.Tensor]) -> str:
    """The first MAE / SIM encoder of the table with the file's sizes, SIM's first for a file without a
    final norm (SIM's encoder has none; a fine-tuned file has ``fc_norm``) or with SIM's branches."""
    want = _shape_of(state)
    sim = any(k.startswith(("mm_", "projector_")) for k in state) or not {"norm.weight", "fc_norm.weight"} & set(state)
    for e in sorted(ENCODERS.values(), key=lambda e: e.family != ("sim" if sim else "mae")):
        if e.family in ("mae", "sim") and _shape_of(_built(e.name, {})) == want:
            return e.name
    raise FormatMismatchError(
        f"no encoder of the table has this file's sizes (embed_dim, depth, patch, tokens) = {want}; name the "
        "encoder it was trained as: --backbone NAME with key=value size overrides (num_heads=..., embed_dim=...)"
    )


def vit_arch(state: Mapping[str, torch.Tensor], name: str | None = None, overrides: dict | None = None
             ) -> tuple[ViTArch, str]:
    """The timm / Hugging Face model description of an official-names ViT state dict, with the head
    counts of encoder ``name`` (built with ``overrides``; matched on the shapes when omitted)."""
    if "patch_embed.proj.weight" not in state or "blocks.0.attn.qkv.weight" not in state:
        raise FormatMismatchError(f"not a ViT encoder (no patch_embed.proj / blocks.0.attn.qkv); first keys: "
                                  f"{list(state)[:5]}")
    name = name or _match_encoder(state)
    model = _built(name, overrides or {})
    if _shape_of(model) != _shape_of(state):
        raise FormatMismatchError(f"the file's sizes {_shape_of(state)} differ from {name}'s {_shape_of(model)} "
                                  "(embed_dim, depth, patch, tokens); pass the encoder it was trained as")
    dim, depth, patch, tokens = _shape_of(state)
    decoder = None
    if "decoder_blocks.0.attn.qkv.weight" in state and hasattr(model, "decoder_blocks"):
        decoder = (int(state["decoder_embed.weight"].shape[0]), _count(state, "decoder_blocks"),
                   model.decoder_blocks[0].attn.num_heads)
    arch = ViTArch(img_size=round((tokens - 1) ** 0.5) * patch, patch_size=patch, embed_dim=dim, depth=depth,
                   num_heads=model.blocks[0].attn.num_heads,
                   mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / dim,
                   final_norm="norm.weight" in state, decoder=decoder,
                   norm_pix_loss=bool(getattr(model, "norm_pix_loss", False)))
    return arch, name


def _read_official(path: str, target: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    obj = read_checkpoint(path)
    kind = expect_kind(obj, path, PRETRAINING_KINDS, PURPOSE)
    if kind is CheckpointKind.CONVMAE and target != "official":
        raise FormatMismatchError(f"{path} is a ConvMAE checkpoint: timm and Hugging Face have no ConvMAE model "
                                  "to hold it (its convolutional stages have no ViT counterpart)")
    state, report = to_official(state_dict_of(obj, path))
    return state, [str(report)] if report else []


def _save_safetensors(state: Mapping[str, torch.Tensor], path: str) -> None:
    from safetensors.torch import save

    data = save({k: v.contiguous() for k, v in state.items()}, metadata={"format": "pt"})
    atomic_write(path, lambda f: f.write(data))


def _write_hf(state: Mapping[str, torch.Tensor], out: str, arch: ViTArch) -> list[str]:
    if "head.weight" in state or "fc_norm.weight" in state:
        raise FormatMismatchError("a fine-tuned classifier (fc_norm / head): Hugging Face's ViTMAE models hold no "
                                  "classifier; convert the pretraining file, or use --to timm")
    notes, dropped = [], []
    if arch.decoder is None:  # ViTMAEModel: the encoder alone (SIM's projector / predictor have no place)
        state, encoder_only = official_to_timm(state)
        dropped = encoder_only.dropped
    state = dict(state)
    if not arch.final_norm:  # SIM: HF's ViTMAEModel always ends with a LayerNorm
        dim = arch.embed_dim
        state.update({"norm.weight": torch.ones(dim), "norm.bias": torch.zeros(dim)})
        notes.append("no final norm in the file (SIM): vit.layernorm written as weight 1 / bias 0; "
                     "hidden_states[-1] of the model equals the encoder's output, last_hidden_state is its LayerNorm")
    hf, report = official_to_hf(state)
    report.dropped += dropped
    os.makedirs(out, exist_ok=True)
    config = json.dumps(hf_config(arch), indent=2, sort_keys=True)
    atomic_write(os.path.join(out, "config.json"), lambda f: f.write(config.encode()))
    _save_safetensors(hf, os.path.join(out, "model.safetensors"))
    return [str(report)] + notes


def convert_file(src: str | os.PathLike, dst: str | os.PathLike, to: str, name: str | None = None,
                 overrides: dict | None = None) -> InteropResult:
    """Convert checkpoint ``src`` into format ``to`` ('official', 'timm' or 'hf') at ``dst`` (a file; a
    folder for 'hf'). ``name``/``overrides``: the encoder whose head counts timm / HF need (matched on
    the shapes when omitted). Raises CheckpointError (FormatMismatchError) for files that do not fit."""
    if to not in FORMATS:
        raise ValueError(f"unknown format {to!r}; choose one of {', '.join(FORMATS)}")
    src, dst = os.fspath(src), os.fspath(dst)
    state, reports = _read_official(src, to)
    result = InteropResult(src, dst, to, reports=reports)
    if to == "official":
        atomic_save({"model": state}, dst)
        result.load_with = f"any tool's --weights {dst} (a {classify_checkpoint(state).value})"
        return result
    arch, result.encoder = vit_arch(state, name, overrides)
    if to == "hf":
        result.reports += _write_hf(state, dst, arch)
        cls = "ViTMAEForPreTraining" if arch.decoder else "ViTMAEModel"
        result.load_with = f"transformers.{cls}.from_pretrained({dst!r})"
        return result
    timm_state, report = official_to_timm(state)
    result.reports.append(str(report))
    if dst.endswith(".safetensors"):
        _save_safetensors(timm_state, dst)
    else:
        atomic_save(timm_state, dst)
    model, kwargs = timm_model_args(arch, timm_state, mae=encoder(result.encoder).family == "mae")
    extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    result.load_with = f"timm.create_model({model!r}, pretrained=True, pretrained_cfg_overlay=dict(file={dst!r}){extra})"
    return result


def parse_overrides(opts: list[str]) -> dict:
    """``key=value`` strings -> build_model overrides (values as Python literals where they parse)."""
    out = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key):
            raise ValueError(f"expected key=value (e.g. num_heads=2), got {opt!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out
