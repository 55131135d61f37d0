"""A shrunk ViTDet Mask R-CNN and a generated toy sample: proves the detectron2 stack on CPU.

Used by the stack tests; the model is detectron2's own model-zoo ViTDet config
(``common/models/mask_rcnn_vitdet.py``) with every size reduced, nothing re-implemented.
"""
from __future__ import annotations

import torch
from detectron2 import model_zoo
from detectron2.config import instantiate
from detectron2.layers import ShapeSpec
from detectron2.structures import BitMasks, Boxes, Instances


def tiny_vitdet_mask_rcnn(img_size: int = 128, num_classes: int = 3) -> torch.nn.Module:
    """detectron2's ViTDet Mask R-CNN (ViT + simple feature pyramid + LN heads), shrunk for CPU."""
    cfg = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
    vit = cfg.backbone.net
    vit.img_size, vit.embed_dim, vit.depth, vit.num_heads = img_size, 64, 2, 2
    vit.window_size, vit.window_block_indexes, vit.drop_path_rate = 4, [0], 0.0
    cfg.backbone.square_pad = img_size
    cfg.roi_heads.num_classes = num_classes
    cfg.roi_heads.batch_size_per_image = 64
    cfg.roi_heads.box_head.conv_dims = [32]
    cfg.roi_heads.box_head.fc_dims = [64]
    cfg.roi_heads.box_predictor.input_shape = ShapeSpec(channels=64)
    cfg.roi_heads.mask_head.conv_dims = [32, 32]
    cfg.proposal_generator.batch_size_per_image = 64
    cfg.proposal_generator.post_nms_topk = (100, 100)
    return instantiate(cfg)


def toy_instance_sample(img_size: int = 128, seed: int = 0) -> dict:
    """One generated image with three filled rectangles and their boxes, classes and masks, in the
    format detectron2 models take (``{"image": CHW uint8-valued float, "instances": Instances}``)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.full((3, img_size, img_size), 40.0)
    boxes, masks = [], []
    quarter = img_size // 4
    for k in range(3):
        x0 = int(torch.randint(0, img_size - quarter - 1, (1,), generator=g))
        y0 = int(torch.randint(0, img_size - quarter - 1, (1,), generator=g))
        mask = torch.zeros(img_size, img_size, dtype=torch.bool)
        mask[y0 : y0 + quarter, x0 : x0 + quarter] = True
        image[k][mask] = 220.0
        boxes.append([x0, y0, x0 + quarter, y0 + quarter])
        masks.append(mask)
    inst = Instances((img_size, img_size))
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.gt_classes = torch.arange(3)
    inst.gt_masks = BitMasks(torch.stack(masks))
    return {"image": image, "instances": inst, "height": img_size, "width": img_size}
