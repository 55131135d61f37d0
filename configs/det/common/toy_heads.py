"""Narrow FPN / RPN / ROI heads for the CPU toy rows: the paper heads (256-channel 4conv1fc box head
and mask head) cost ~0.4 TFLOP per iteration at batch 4, which is minutes per step on 2 CPU cores."""
from detectron2.layers import ShapeSpec


def narrow_heads(model, channels: int = 32, fc_dim: int = 128) -> None:
    """Shrink every head of a Mask R-CNN LazyConfig ``model`` to ``channels`` in place."""
    model.backbone.out_channels = channels
    model.proposal_generator.head.in_channels = channels
    model.roi_heads.batch_size_per_image = 64
    model.proposal_generator.post_nms_topk = (200, 100)
    model.roi_heads.box_head.input_shape = ShapeSpec(channels=channels, height=7, width=7)
    model.roi_heads.box_head.conv_dims = [channels] * 4
    model.roi_heads.box_head.fc_dims = [fc_dim]
    model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=fc_dim)
    model.roi_heads.mask_head.input_shape = ShapeSpec(channels=channels, width=14, height=14)
    model.roi_heads.mask_head.conv_dims = [channels] * 5
