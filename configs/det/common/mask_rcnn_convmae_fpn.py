"""ConvMAE Mask R-CNN (Alpha-VL/ConvMAE DET/configs/convmae/convmae_base_mask_rcnn_FPN_100ep.py): the
ConvViTDet pyramid s0-s3 (window 16, global blocks 0/3/6/10, drop path 0.1) + FPN 256 with SyncBN,
2-conv RPN, 4conv1fc box head and mask head with (naive) SyncBN, ImageNet RGB normalisation. Its test
inputs come padded to 1024x1024 by the data mapper (common/coco_lsj_padded.py), so the model is
PaddedInputRCNN, which rescales predictions from the image's region of the input (the official
GeneralizedRCNNImageListForward with lsj_postprocess=True)."""
from functools import partial

from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.layers.batch_norm import NaiveSyncBatchNorm
from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from transfer.det.backbones import MIMBackbone
from transfer.det.lsj import PaddedInputRCNN

_constants = model_zoo.get_config("common/data/constants.py").constants
# NaiveSyncBatchNorm: heads may see empty batches, which torch's SyncBatchNorm does not support
_head_norm = partial(NaiveSyncBatchNorm, stats_mode="N")


model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
model._target_ = PaddedInputRCNN
model.backbone = L(FPN)(
    # window 16, global blocks 0/3/6/10, drop path 0.1: the encoder's entry in pretrain/encoders.py
    bottom_up=L(MIMBackbone)(name="convmae_base", img_size=1024),
    in_features=["s0", "s1", "s2", "s3"],
    out_channels=256,
    norm="SyncBN",
    top_block=L(LastLevelMaxPool)(),
)
model.pixel_mean = _constants.imagenet_rgb256_mean
model.pixel_std = _constants.imagenet_rgb256_std
model.input_format = "RGB"
model.proposal_generator.head.conv_dims = [-1, -1]  # 2 convs in the RPN head
model.roi_heads.box_head.conv_dims = [256, 256, 256, 256]  # 4conv1fc
model.roi_heads.box_head.fc_dims = [1024]
model.roi_heads.box_head.conv_norm = _head_norm
model.roi_heads.mask_head.conv_norm = _head_norm
