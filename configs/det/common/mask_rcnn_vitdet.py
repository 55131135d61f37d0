"""ViTDet Mask R-CNN (detectron2 configs/common/models/mask_rcnn_vitdet.py) with our ViT trunk, so MAE
and SIM checkpoints (official or ours) load into it: window 14, global blocks 2/5/8/11, rel-pos,
drop path 0.1, SimpleFeaturePyramid 4/2/1/0.5 -> p2-p6, LN heads, 2-conv RPN, 4conv1fc box head."""
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from transfer.det.backbones import MIMBackbone

model = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
# window 14, global blocks 2/5/8/11, drop path 0.1: the encoder's entry in pretrain/encoders.py
model.backbone.net = L(MIMBackbone)(name="mae_vit_base", img_size=1024)
model.backbone.in_feature = "last_feat"
