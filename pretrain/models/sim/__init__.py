"""SIM (Siamese Image Modeling, Tao et al., CVPR 2023; OpenGVLab/Siamese-Image-Modeling) in one place:

- ``model.py``: ``SiameseIMViT`` (online encoder + projector + predictor, EMA target branch) and the
  UniGrad loss; registers ``sim_vit_{base,large,tiny}_patch16``;
- ``geometry.py``: where view 2's patches lie in view 1 (``relative_crop``, ``sim_relative_crop``) and
  their position embedding (``relative_pos_embed``);
- ``masking.py``: the block-wise mask of view 1 and its visible indices;
- ``views.py``: the two augmented views (``SIMTransform``) on tensors, and the official PIL composition;
- ``color.py``: the colour operations of the views on image tensors, with Pillow's arithmetic.

``views`` and ``color`` are data-loading code and are imported from there, not here.
"""
from .geometry import RelativeCrop, relative_crop, relative_pos_embed, sim_relative_crop
from .masking import block_wise_mask, visible_indices
from .model import PermuteBN, SiameseIMViT, unigrad_loss

__all__ = [
    "RelativeCrop", "relative_crop", "relative_pos_embed", "sim_relative_crop", "block_wise_mask",
    "visible_indices", "PermuteBN", "SiameseIMViT", "unigrad_loss",
]
