"""Key formats of ViT encoder checkpoints, both ways: the official MAE / SIM names (ours), timm's
``VisionTransformer`` and Hugging Face transformers' ``ViTMAEModel`` / ``ViTMAEForPreTraining``.
torch only (the pretraining export must not need timm, transformers or a framework).

* timm: the official MAE / SIM code builds its ViT from timm's ``Block``, so timm's key names ARE the
  official ones (``blocks.N.attn.qkv``, ``norm`` after the blocks, or ``fc_norm`` after the pooling of a
  ``global_pool='avg'`` classifier such as MAE's fine-tuned files). Reading one checks that it uses no timm
  part our encoders lack (register tokens, q/k norms, a pre-norm, an attention pool); writing one keeps
  the encoder (decoder, SIM's projector / predictor / momentum branch dropped and reported).
* Hugging Face: ``vit.embeddings.*``, per layer ``layernorm_before/after``, separate query / key / value
  projections (fused to our ``attn.qkv`` and split back), ``vit.layernorm`` and the decoder under
  ``decoder.*``. transformers 4 (and the released ``facebook/vit-mae-*`` files) name a layer
  ``vit.encoder.layer.N.attention.attention.{query,key,value}``, ``attention.output.dense``,
  ``intermediate.dense``, ``output.dense`` (decoder: ``decoder.decoder_layers.N.*``); transformers 5's
  modules are ``vit.layers.N.attention.{q,k,v,o}_proj`` and ``mlp.fc1/fc2``, and its ``save_pretrained``
  (5.25, measured) writes the 4.x encoder names with decoder layers as ``decoder.decoder_encoder.layer.N.*``.
  All of these are read; writing uses the released 4.x names, which transformers 5 converts when it
  loads them. A ``ViTMAEModel`` file has the same keys without ``vit.``.

``to_official(state)`` turns either into official names with a ``FormatReport``; ``official_to_timm`` /
``official_to_hf`` go the other way; ``ViTArch`` + ``hf_config`` / ``timm_model_args`` describe the model
that loads the result.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

import torch

from .errors import FormatMismatchError
from .kinds import HF_VIT_MARKER
from .report import group_keys

__all__ = [
    "FORMATS", "FormatReport", "ViTArch", "hf_config", "is_hf_vit", "official_to_hf",
    "official_to_timm", "timm_model_args", "to_official",
]

FORMATS = ("official", "timm", "hf")


@dataclass
class FormatReport:
    """What a name conversion did: the format read or written, tensors written, layers whose query /
    key / value were fused or split, and keys dropped (no counterpart in the target)."""

    fmt: str
    renamed: int = 0
    qkv_layers: int = 0
    dropped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        qkv = f", query/key/value of {self.qkv_layers} layers fused or split" if self.qkv_layers else ""
        return f"{self.fmt}: {self.renamed} tensors{qkv}; dropped: {group_keys(self.dropped, full=False)}"


# ------------------------------------------------------------------------------------ Hugging Face
_HF_TOP = (  # official name (parameter or module), Hugging Face name
    ("cls_token", "vit.embeddings.cls_token"),
    ("pos_embed", "vit.embeddings.position_embeddings"),
    ("patch_embed.proj", "vit.embeddings.patch_embeddings.projection"),
    ("norm", "vit.layernorm"),
    ("decoder_embed", "decoder.decoder_embed"),
    ("mask_token", "decoder.mask_token"),
    ("decoder_pos_embed", "decoder.decoder_pos_embed"),
    ("decoder_norm", "decoder.decoder_norm"),
    ("decoder_pred", "decoder.decoder_pred"),
)
_HF_LAYER_LISTS = (  # official, the name written (transformers 4), every name read
    ("blocks", "vit.encoder.layer", ("vit.encoder.layer", "vit.layers")),
    ("decoder_blocks", "decoder.decoder_layers", ("decoder.decoder_layers", "decoder.decoder_encoder.layer")),
)
_HF_LAYER_PARTS = (  # official, transformers 4, transformers 5 (inside one layer)
    ("norm1", "layernorm_before", "layernorm_before"),
    ("attn.proj", "attention.output.dense", "attention.o_proj"),
    ("norm2", "layernorm_after", "layernorm_after"),
    ("mlp.fc1", "intermediate.dense", "mlp.fc1"),
    ("mlp.fc2", "output.dense", "mlp.fc2"),
)
_HF_QKV = (("attention.attention.query", "attention.attention.key", "attention.attention.value"),
           ("attention.q_proj", "attention.k_proj", "attention.v_proj"))
_HF_LAYER = re.compile(r"^(vit\.encoder\.layer|vit\.layers|decoder\.decoder_layers|decoder\.decoder_encoder\.layer)"
                       r"\.(\d+)\.(.+)\.(weight|bias)$")


def is_hf_vit(keys) -> bool:
    """Whether these state-dict keys are in Hugging Face's ViT / ViTMAE names."""
    return any(HF_VIT_MARKER.search(str(k)) for k in keys)


def _with_vit_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``ViTMAEModel`` file (``embeddings.*``, no ``vit.``) in ``ViTMAEForPreTraining``'s layout."""
    if any(k.startswith("vit.") for k in state):
        return dict(state)
    return {("vit." + k if k.startswith(("embeddings.", "encoder.", "layers.", "layernorm.")) else k): v
            for k, v in state.items()}


def _put_renamed(out: dict, report: FormatReport, key: str, value: torch.Tensor, pairs) -> None:
    """``out[key renamed by the first (source, target) prefix pair that matches] = value``; a key no pair
    matches is reported as dropped."""
    pair = next(((src, dst) for src, dst in pairs if key == src or key.startswith(src + ".")), None)
    if pair is None:
        report.dropped.append(key)
    else:
        out[pair[1] + key[len(pair[0]):]] = value


def _hf_layer_key(hf_list: str, index: str, part: str, suffix: str) -> tuple[str, int] | None:
    """(official key, q/k/v slot or -1) of one HF layer parameter; None when the part has no counterpart."""
    official_list = next(o for o, _, read in _HF_LAYER_LISTS if hf_list in read)
    for official, v4, v5 in _HF_LAYER_PARTS:
        if part in (v4, v5):
            return f"{official_list}.{index}.{official}.{suffix}", -1
    for names in _HF_QKV:
        if part in names:
            return f"{official_list}.{index}.attn.qkv.{suffix}", names.index(part)
    return None


def _hf_to_official(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], FormatReport]:
    version = "5" if any(re.search(r"\.layers\.|_proj\.|decoder_encoder\.", k) for k in state) else "4"
    report = FormatReport(f"Hugging Face ViTMAE (transformers {version} names)")
    out, qkv, unplaced = {}, {}, []
    for key, value in _with_vit_prefix(state).items():
        layer = _HF_LAYER.match(key)
        if layer:
            mapped = _hf_layer_key(*layer.groups())
            if mapped is None:
                unplaced.append(key)
            elif mapped[1] < 0:
                out[mapped[0]] = value
            else:
                qkv.setdefault(mapped[0], [None] * 3)[mapped[1]] = value
            continue
        _put_renamed(out, report, key, value, [(h, o) for o, h in _HF_TOP])
    if unplaced or any(None in parts for parts in qkv.values()):
        partial = [k for k, parts in qkv.items() if None in parts]
        raise FormatMismatchError(
            f"Hugging Face checkpoint with layer parts the official ViT has no place for: {unplaced[:4]}"
            f"{' and incomplete query/key/value in ' + str(partial[:2]) if partial else ''}; expected a ViTMAE "
            "(ViTMAEModel / ViTMAEForPreTraining) or plain ViT checkpoint"
        )
    out.update({k: torch.cat(parts, dim=0) for k, parts in qkv.items()})
    report.renamed, report.qkv_layers = len(out), len({k.rsplit(".", 1)[0] for k in qkv})
    return out, report


def official_to_hf(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], FormatReport]:
    """Official MAE / SIM names -> ``ViTMAEForPreTraining`` names (transformers 4 layout, ``vit.*`` and,
    when the file has MAE's decoder, ``decoder.*``). Keys with no Hugging Face counterpart are dropped."""
    report = FormatReport("Hugging Face ViTMAE (transformers 4 names)")
    out = {}
    layer = re.compile(r"^(blocks|decoder_blocks)\.(\d+)\.(.+)\.(weight|bias)$")
    for key, value in state.items():
        m = layer.match(key)
        if m:
            hf_list = next(written for o, written, _ in _HF_LAYER_LISTS if o == m[1])
            if m[3] == "attn.qkv":
                for name, part in zip(_HF_QKV[0], value.chunk(3, dim=0)):
                    out[f"{hf_list}.{m[2]}.{name}.{m[4]}"] = part.clone()
                report.qkv_layers += m[4] == "weight"
                continue
            part = next((v4 for o, v4, _ in _HF_LAYER_PARTS if o == m[3]), None)
            if part is not None:
                out[f"{hf_list}.{m[2]}.{part}.{m[4]}"] = value
                continue
        _put_renamed(out, report, key, value, _HF_TOP)
    report.renamed = len(out)
    return out, report


# ------------------------------------------------------------------------------------ timm
# timm VisionTransformer parts with no counterpart in the official MAE / SIM ViT: refused when read
_TIMM_ONLY = re.compile(r"^(reg_token|norm_pre\.|attn_pool\.)|\.attn\.(q_norm|k_norm)\.|\.attn\.norm\.")
# what timm's VisionTransformer holds of an official checkpoint
_TIMM_KEYS = re.compile(r"^(cls_token|pos_embed|patch_embed\.|blocks\.|norm\.|fc_norm\.|head\.)")


def official_to_timm(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], FormatReport]:
    """Official MAE / SIM names -> timm ``VisionTransformer`` (the same names: the encoder is kept, the
    decoder, mask token and SIM's projector / predictor / momentum branch are dropped)."""
    report = FormatReport("timm VisionTransformer")
    out = {k: v for k, v in state.items() if _TIMM_KEYS.match(k)}
    report.dropped = [k for k in state if k not in out]
    report.renamed = len(out)
    return out, report


def _timm_to_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    extra = [k for k in state if _TIMM_ONLY.search(k)]
    if extra:
        raise FormatMismatchError(
            f"timm ViT with parts the official MAE / SIM ViT lacks: {extra[:4]} (register tokens, q/k norms, "
            "a pre-norm or an attention pool change its features); expected a plain ViT such as timm's "
            "vit_base_patch16_224.mae"
        )
    return dict(state)


def to_official(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], FormatReport | None]:
    """A ViT state dict in official, timm or Hugging Face names -> official names. The report is None
    when nothing was renamed (official / timm names). Raises FormatMismatchError for parts that have no
    place in the official ViT."""
    if is_hf_vit(state):
        return _hf_to_official(state)
    return _timm_to_official(state), None


# ------------------------------------------------------------------------------------ target models
@dataclass(frozen=True)
class ViTArch:
    """What a timm / Hugging Face model needs to be built for an official ViT checkpoint (the head count
    is in no tensor's shape). ``decoder``: MAE's (embed_dim, depth, num_heads), None for SIM / encoders."""

    img_size: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    final_norm: bool = True
    decoder: tuple[int, int, int] | None = None
    norm_pix_loss: bool = False


def hf_config(arch: ViTArch, layer_norm_eps: float = 1e-6) -> dict:
    """``config.json`` of the ``ViTMAEForPreTraining`` (MAE with decoder) or ``ViTMAEModel`` that holds
    ``arch`` (LayerNorm eps 1e-6 as the official code; Hugging Face's default is 1e-12)."""
    dec = arch.decoder or (512, 8, 16)  # transformers' defaults where the checkpoint has no decoder
    return {
        "architectures": ["ViTMAEForPreTraining" if arch.decoder else "ViTMAEModel"], "model_type": "vit_mae",
        "image_size": arch.img_size, "patch_size": arch.patch_size, "num_channels": 3,
        "hidden_size": arch.embed_dim, "num_hidden_layers": arch.depth, "num_attention_heads": arch.num_heads,
        "intermediate_size": int(arch.embed_dim * arch.mlp_ratio), "hidden_act": "gelu", "qkv_bias": True,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "layer_norm_eps": layer_norm_eps,
        "initializer_range": 0.02, "decoder_hidden_size": dec[0], "decoder_num_hidden_layers": dec[1],
        "decoder_num_attention_heads": dec[2], "decoder_intermediate_size": int(dec[0] * arch.mlp_ratio),
        "mask_ratio": 0.75, "norm_pix_loss": arch.norm_pix_loss,
    }


# timm's model names for the official ViT sizes: (embed_dim, depth, num_heads, patch_size) -> name
_TIMM_NAMES = {(768, 12, 12, 16): "vit_base_patch16_224", (1024, 24, 16, 16): "vit_large_patch16_224",
               (1280, 32, 16, 14): "vit_huge_patch14_224"}


def timm_model_args(arch: ViTArch, state: Mapping[str, torch.Tensor], mae: bool) -> tuple[str, dict]:
    """(model name, keyword arguments) of ``timm.create_model`` for a file written by ``official_to_timm``:
    timm's ``.mae`` tag for MAE's encoders, the sizes where they differ from the named model, no final norm
    for SIM, ``global_pool='avg'`` for a fine-tuned file with ``fc_norm`` and its head's class count."""
    size = (arch.embed_dim, arch.depth, arch.num_heads, arch.patch_size)
    name = _TIMM_NAMES.get(size, "vit_base_patch16_224")
    kwargs: dict = {} if size in _TIMM_NAMES and arch.img_size == 224 else dict(
        img_size=arch.img_size, patch_size=arch.patch_size, embed_dim=arch.embed_dim, depth=arch.depth,
        num_heads=arch.num_heads)
    head = state.get("head.weight")
    kwargs["num_classes"] = int(head.shape[0]) if head is not None else 0
    if "fc_norm.weight" in state:
        kwargs["global_pool"] = "avg"
    elif "norm.weight" not in state:
        kwargs["final_norm"] = False
    if mae and head is None and "norm.weight" in state:
        name += ".mae"
        if kwargs == {"num_classes": 0}:
            kwargs = {}
    return name, kwargs
