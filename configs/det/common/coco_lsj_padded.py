"""Large-scale-jitter COCO data as ConvMAE's detection recipe (Alpha-VL/ConvMAE
DET/configs/convmae/convmae_base_mask_rcnn_FPN_100ep.py): every input is exactly 1024x1024, in training
and at test, because the data mapper pads it (the FPN pads to a multiple of 32 only, and ConvMAE's
frozen 64x64 position table then matches the 64x64 grid).

Training: ResizeScale 0.1-2.0 of 1024, FixedSizeCrop 1024 padded with 128 (detectron2's default pad
value, which the official config keeps), then the flip, in the official order. Test: shortest edge 1024
(longer side at most 1024), padded to 1024x1024; the model (transfer.det.lsj.PaddedInputRCNN) maps
its predictions back from the padded input. Instance masks are padded with 0 (background):
detectron2's FixedSizeCrop pads segmentations with 255 by default, which an RLE instance mask would
read as foreground.
"""
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from .coco_lsj import dataloader, image_size

dataloader.train.mapper.augmentations = [
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad_value=128.0, seg_pad_value=0),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad_value=128.0, seg_pad_value=0),
]
