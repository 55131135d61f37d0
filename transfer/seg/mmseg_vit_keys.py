"""mmseg's own ViT parameter names -> ours, so mmseg's released MAE UperNet checkpoints load into
``MIMViT`` (``backbone.net`` = ``transfer.backbones.ViTBackbone`` with ``use_cls_token=True``).

mmseg 1.2.2 ``mmseg/models/backbones/mae.py`` / ``beit.py`` name the encoder (under ``backbone.``):

    cls_token, pos_embed                              -> cls_token, pos_embed
    patch_embed.projection.{weight,bias}              -> patch_embed.proj.*
    layers.N.ln1 / ln2                                -> blocks.N.norm1 / norm2
    layers.N.attn.qkv / proj                          -> blocks.N.attn.qkv / proj
    layers.N.attn.q_bias, v_bias (BEiT, no qkv.bias)  -> blocks.N.attn.qkv.bias = [q_bias, 0, v_bias]
    layers.N.attn.relative_position_bias_table        -> blocks.N.rel_pos_bias.relative_position_bias_table
    layers.N.attn.relative_position_index             -> dropped (computed here)
    layers.N.ffn.layers.0.0 / ffn.layers.1            -> blocks.N.mlp.fc1 / fc2  (mmcv FFN)
    layers.N.gamma_1 / gamma_2                        -> blocks.N.gamma_1 / gamma_2

Neck and heads (``neck.*``, ``decode_head.*``, ``auxiliary_head.*``) are mmseg's own modules in
both and keep their names.

``mmseg_backbone_to_ours`` applies the same rules to a backbone-only file in these names (no ``backbone.``
prefix): what mmseg's MAE / BEiT configs start from (``pretrain/mae_pretrain_vit_base_mmcls.pth``, written by
mmseg's tools/model_converters/beit2mmseg.py), read by ``MIMViT`` for ``--weights FILE``.
"""
from __future__ import annotations

import re
from typing import Mapping

import torch

MMSEG_PREFIX = "backbone."
OUR_PREFIX = "backbone.net."
_RENAMES = (
    (r"^patch_embed\.projection\.", "patch_embed.proj."),
    (r"^layers\.(\d+)\.ln([12])\.", r"blocks.\1.norm\2."),
    (r"^layers\.(\d+)\.attn\.(qkv|proj)\.", r"blocks.\1.attn.\2."),
    (r"^layers\.(\d+)\.attn\.relative_position_bias_table$", r"blocks.\1.rel_pos_bias.relative_position_bias_table"),
    (r"^layers\.(\d+)\.ffn\.layers\.0\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^layers\.(\d+)\.ffn\.layers\.1\.", r"blocks.\1.mlp.fc2."),
    (r"^layers\.(\d+)\.(gamma_[12])$", r"blocks.\1.\2"),
    (r"^(cls_token|pos_embed)$", r"\1"),
)
_DERIVED = re.compile(r"^layers\.\d+\.attn\.relative_position_index$")
_QV_BIAS = re.compile(r"^layers\.(\d+)\.attn\.([qv])_bias$")


def is_mmseg_vit_state(keys, prefix: str = MMSEG_PREFIX) -> bool:
    """True when ``keys`` hold an encoder in mmseg's ViT / BEiT / MAE naming (``layers.N.ln1.*``)."""
    return any(str(k).startswith(prefix + "layers.") and ".ln1." in str(k) for k in keys)


def _rename(key: str) -> str | None:
    for pattern, replacement in _RENAMES:
        new, count = re.subn(pattern, replacement, key)
        if count:
            return new
    return None


def _merge_qv_bias(encoder: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BEiT's separate q/v biases (k has none) -> one qkv bias [3*D] = [q_bias, 0, v_bias]."""
    blocks = sorted({int(m.group(1)) for k in encoder if (m := _QV_BIAS.match(k))})
    for i in blocks:
        q, v = encoder.pop(f"layers.{i}.attn.q_bias"), encoder.pop(f"layers.{i}.attn.v_bias")
        encoder[f"layers.{i}.attn.qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
    return encoder


def _encoder_to_ours(encoder: dict[str, torch.Tensor], src_prefix: str, dst_prefix: str
                     ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """mmseg encoder keys (without ``src_prefix``) -> ours under ``dst_prefix``; (state, dropped)."""
    encoder = _merge_qv_bias(dict(encoder))
    out, dropped, unknown = {}, [], []
    for key, value in encoder.items():
        if _DERIVED.match(key):
            dropped.append(src_prefix + key)
            continue
        new = _rename(key)
        if new is None:
            unknown.append(src_prefix + key)
        else:
            out[dst_prefix + new] = value
    if unknown:
        raise ValueError(
            f"{len(unknown)} keys of mmseg's ViT backbone have no counterpart in MIMViT, first: {unknown[:5]}; "
            "expected mmseg's MAE / BEiT names (layers.N.ln1, attn.qkv, ffn.layers.0.0, gamma_1, ...) "
            "without a final norm (the MAE recipe's final_norm=False)"
        )
    return out, dropped


def mmseg_vit_to_ours(
    state: Mapping[str, torch.Tensor], src_prefix: str = MMSEG_PREFIX, dst_prefix: str = OUR_PREFIX
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename the encoder keys under ``src_prefix`` (mmseg) to ours under ``dst_prefix``; other keys
    pass unchanged. Returns (new state dict, dropped keys). Raises ValueError naming any encoder key
    without a rule (e.g. a final norm, which the MAE recipe does not have)."""
    encoder = {k[len(src_prefix):]: v for k, v in state.items() if k.startswith(src_prefix)}
    out = {k: v for k, v in state.items() if not k.startswith(src_prefix)}
    renamed, dropped = _encoder_to_ours(encoder, src_prefix, dst_prefix)
    out.update(renamed)
    return out, dropped


# the encoder's own keys in a backbone-only file; anything else there (mmseg's beit2mmseg keeps the
# official file's other keys: patch_embed.proj.* copies, the final norm, mask_token, the decoder; mmpretrain's
# final ln1) is not renamed
_BACKBONE_ENCODER_KEY = re.compile(r"^(layers\.\d+\.|patch_embed\.projection\.|(cls_token|pos_embed)$)")


def mmseg_backbone_to_ours(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A backbone-only state dict in mmseg's ViT names (no ``backbone.`` prefix: what mmseg's
    tools/model_converters/beit2mmseg.py writes and mmseg's MAE / BEiT ``init_cfg`` reads) -> ours,
    without prefix, for ``transfer.backbones.convert_state_dict``. Keys outside the encoder keep their
    names (the loader drops and reports them); where a renamed key meets a kept one (beit2mmseg's
    ``patch_embed.proj.*`` copies) the renamed one wins. Returns (state, dropped); raises ValueError
    for an encoder key without a rule."""
    encoder = {k: v for k, v in state.items() if _BACKBONE_ENCODER_KEY.match(k)}
    renamed, dropped = _encoder_to_ours(encoder, "", "")
    rest = {k: v for k, v in state.items() if k not in encoder}
    return {**rest, **renamed}, dropped
