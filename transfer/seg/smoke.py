"""A shrunk UperNet (mmseg's MAE backbone + Feature2Pyramid + UPerHead + FCN auxiliary head) and a
generated toy sample: proves the mmsegmentation stack on CPU. Used by the stack tests."""
from __future__ import annotations

import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

_BN = dict(type="BN", requires_grad=True)


def tiny_upernet_config(img_size: int = 64, num_classes: int = 4, dim: int = 64) -> dict:
    """The structure of mmseg's ``configs/mae`` UperNet, every size reduced."""
    return dict(
        type="EncoderDecoder",
        data_preprocessor=dict(
            type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
            bgr_to_rgb=False, pad_val=0, seg_pad_val=255, size=(img_size, img_size),
        ),
        backbone=dict(
            type="MAE", img_size=(img_size, img_size), patch_size=16, embed_dims=dim, num_layers=4,
            num_heads=2, mlp_ratio=4, init_values=1.0, drop_path_rate=0.0, out_indices=[0, 1, 2, 3],
        ),
        neck=dict(type="Feature2Pyramid", embed_dim=dim, rescales=[4, 2, 1, 0.5], norm_cfg=_BN),
        decode_head=dict(
            type="UPerHead", in_channels=[dim] * 4, in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6),
            channels=32, dropout_ratio=0.1, num_classes=num_classes, norm_cfg=_BN, align_corners=False,
            loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
        ),
        auxiliary_head=dict(
            type="FCNHead", in_channels=dim, in_index=2, channels=16, num_convs=1, concat_input=False,
            dropout_ratio=0.1, num_classes=num_classes, norm_cfg=_BN, align_corners=False,
            loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=0.4),
        ),
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )


def build_tiny_upernet(**kwargs) -> torch.nn.Module:
    register_all_modules(init_default_scope=True)
    # ConfigDict: EncoderDecoder reads test_cfg by attribute (test_cfg.mode), as a Config file gives it
    return MODELS.build(ConfigDict(tiny_upernet_config(**kwargs)))


def toy_seg_batch(img_size: int = 64, num_classes: int = 4, batch: int = 2, seed: int = 0) -> dict:
    """Images whose class is written in their colour (rectangles of classes 1..C-1 on background 0),
    as the ``{"inputs": [...], "data_samples": [...]}`` dict mmseg's data preprocessor takes."""
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        label = torch.zeros(img_size, img_size, dtype=torch.long)
        for cls in range(1, num_classes):
            y0, x0 = (int(v) for v in torch.randint(0, img_size // 2, (2,), generator=g))
            label[y0 : y0 + img_size // 3, x0 : x0 + img_size // 3] = cls
        palette = torch.tensor([[30, 30, 30], [220, 40, 40], [40, 220, 40], [40, 40, 220]])
        image = palette[label % len(palette)].permute(2, 0, 1).to(torch.uint8)
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[None])
        sample.set_metainfo(dict(img_shape=(img_size, img_size), ori_shape=(img_size, img_size),
                                 pad_shape=(img_size, img_size)))
        inputs.append(image)
        samples.append(sample)
    return {"inputs": inputs, "data_samples": samples}
