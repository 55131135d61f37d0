"""Large-scale-jitter COCO data (ViTDet: detectron2 projects/ViTDet/configs/common/coco_loader_lsj.py):
flip, ResizeScale 0.1-2.0 of 1024, FixedSizeCrop 1024 (padding is left to the model's square_pad),
test at shortest edge 1024, batch 64. Instance masks may be polygons or RLE (AnyMaskDatasetMapper)."""
import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from transfer.det.mapper import AnyMaskDatasetMapper

dataloader = model_zoo.get_config("common/data/coco.py").dataloader
image_size = 1024
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
]
dataloader.train.mapper._target_ = AnyMaskDatasetMapper
dataloader.train.mapper.image_format = "RGB"
dataloader.train.mapper.use_instance_mask = True
dataloader.train.mapper.recompute_boxes = True  # boxes from the cropped masks
dataloader.train.total_batch_size = 64
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size)]
dataloader.test.mapper.image_format = "RGB"
dataloader.evaluator.use_fast_impl = False  # set by tools/train_det.py when detectron2's _C is present
