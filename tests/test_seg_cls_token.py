"""The segmentation recipe's class token (mmseg ``MAE`` / ``BEiT`` backbones keep it in attention):
BEiT's bias table with its 3 class-token entries, the class-token sequence through the ViT blocks,
and the option's refusals. Pure torch; the comparison with mmseg's own backbone is in
tests/test_seg_mmseg_mae.py."""
from __future__ import annotations

import pytest
import torch

from transfer.backbones import build_backbone
from transfer.backbones.rel_pos import RelativePositionBias


def reference_cls_bias(table: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """BEiT's index rule written out pair by pair: token 0 is the class token; patch (i, j) is
    token 1 + i*w + j; patch-patch pairs use row (di + h-1) * (2w-1) + (dj + w-1); class->patch,
    patch->class and class->class use the last three rows in that order."""
    n = (2 * h - 1) * (2 * w - 1)
    length = 1 + h * w
    index = torch.empty(length, length, dtype=torch.long)
    for q in range(length):
        for k in range(length):
            if q == 0 and k == 0:
                index[q, k] = n + 2
            elif q == 0:
                index[q, k] = n
            elif k == 0:
                index[q, k] = n + 1
            else:
                (qi, qj), (ki, kj) = divmod(q - 1, w), divmod(k - 1, w)
                index[q, k] = (qi - ki + h - 1) * (2 * w - 1) + (qj - kj + w - 1)
    return table[index].permute(2, 0, 1)  # [heads, L, L]


def test_bias_table_with_class_token_entries():
    torch.manual_seed(0)
    rpb = RelativePositionBias((3, 4), num_heads=2, num_prefix_tokens=1)
    assert rpb.relative_position_bias_table.shape == (5 * 7 + 3, 2)
    with torch.no_grad():
        rpb.relative_position_bias_table.normal_()
    torch.testing.assert_close(rpb((3, 4)), reference_cls_bias(rpb.relative_position_bias_table, 3, 4))
    # a smaller grid reads the central part; the class-token entries are the same three rows
    small = RelativePositionBias((2, 3), num_heads=2, num_prefix_tokens=1)
    table = rpb.relative_position_bias_table.detach().view(-1, 2)
    central = table[:-3].view(5, 7, 2)[1:4, 1:6].reshape(-1, 2)
    with torch.no_grad():
        small.relative_position_bias_table.copy_(torch.cat([central, table[-3:]]))
    torch.testing.assert_close(rpb((2, 3)), small((2, 3)))
    with pytest.raises(ValueError, match="0 or 1"):
        RelativePositionBias((3, 4), num_heads=2, num_prefix_tokens=2)


def tiny(**kw):
    cfg = dict(img_size=64, pretrain_img_size=64, embed_dim=32, depth=2, num_heads=2, global_blocks=(0, 1),
               use_rel_pos=False, use_rel_pos_bias=True, init_values=1.0, out_indices=(0, 1))
    return build_backbone("mae_vit_tiny", **{**cfg, **kw})


def test_class_token_takes_part_in_attention():
    """Same weights with and without the class token: the outputs differ, and they depend on the
    class token's value (it is attended to), while its own slot never reaches the outputs."""
    torch.manual_seed(0)
    with_cls, without = tiny(use_cls_token=True).eval(), tiny().eval()
    with torch.no_grad():  # weights far from their std-0.02 init, so attention is not near-uniform
        for name, p in with_cls.named_parameters():
            if "relative_position" not in name:
                p.add_(torch.randn_like(p) * 0.3)
    shared = {k: v for k, v in with_cls.state_dict().items() if "relative_position" not in k and k != "cls_token"}
    missing, unexpected = without.load_state_dict(shared, strict=False)  # the tables are zero in both
    assert missing == [f"blocks.{i}.rel_pos_bias.relative_position_bias_table" for i in range(2)] and not unexpected
    x = torch.randn(2, 3, 64, 80)  # 4 x 5 grid, not the 4 x 4 of the tables
    out = with_cls(x)
    assert [tuple(v.shape) for v in out.values()] == [(2, 32, 4, 5)] * 2
    assert not torch.allclose(out["block1"], without(x)["block1"], atol=1e-4)
    with torch.no_grad():
        with_cls.cls_token.add_(torch.randn_like(with_cls.cls_token))  # a vector: LayerNorm removes constants
    moved = with_cls(x)
    assert not torch.allclose(out["block1"], moved["block1"], atol=1e-4)
    assert "cls_token" in with_cls.no_weight_decay()


@pytest.mark.parametrize("bad", [dict(global_blocks=(1,)), dict(use_rel_pos=True),
                                 dict(pretrain_use_cls_token=False)])
def test_class_token_needs_global_blocks_and_its_position_slot(bad):
    with pytest.raises(ValueError, match="use_cls_token"):
        tiny(use_cls_token=True, **bad)
