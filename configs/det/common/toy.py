"""Shared pieces of the CPU toy rows: narrow heads and a short schedule. The paper heads (256-channel
4conv1fc box head and mask head) cost ~0.4 TFLOP per iteration at batch 4, minutes per step on 2 cores."""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler


def narrow_heads(model, channels: int = 32, fc_dim: int = 128, mask_dim: int = 32) -> None:
    """Shrink every head of a Mask R-CNN LazyConfig ``model`` in place: the FPN, RPN and box head to
    ``channels``, the box head's fc to ``fc_dim``, the mask head's convolutions to ``mask_dim``."""
    model.backbone.out_channels = channels
    model.proposal_generator.head.in_channels = channels
    model.roi_heads.batch_size_per_image = 64
    model.proposal_generator.post_nms_topk = (200, 100)
    model.roi_heads.box_head.input_shape = ShapeSpec(channels=channels, height=7, width=7)
    model.roi_heads.box_head.conv_dims = [channels] * 4
    model.roi_heads.box_head.fc_dims = [fc_dim]
    model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=fc_dim)
    model.roi_heads.mask_head.input_shape = ShapeSpec(channels=channels, width=14, height=14)
    model.roi_heads.mask_head.conv_dims = [mask_dim] * 5


def short_schedule(train, optimizer, max_iter: int = 900, lr: float = 1e-3):
    """fp32, ``max_iter`` iterations at ``lr``, steps at 80% and 93%; returns the lr multiplier. 900
    iterations: over 3 seeds x 1-2 threads the demo (then with a 32-channel mask head) moved by 4.2 box / 5.9
    mask AP at 600, by 2.3 / 5.0 at 900 (its mask spread: a seed whose mask head stalled; docs/DETECTION.md);
    at 300 it had not converged (box AP 59 vs 73 at 600)."""
    train.max_iter = max_iter
    train.eval_period = max_iter
    train.checkpointer.period = 100
    train.log_period = 20
    train.amp.enabled = False
    optimizer.lr = lr
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[1.0, 0.1, 0.01], milestones=[int(0.8 * max_iter), int(0.93 * max_iter)], num_updates=max_iter
        ),
        warmup_length=20 / max_iter,
        warmup_factor=0.001,
    )
