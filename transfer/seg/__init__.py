"""mmsegmentation glue: the only package that imports mmseg / mmcv / mmengine.

Importing it registers ``MIMViT`` / ``MIMConvMAE`` (``mmseg.registry.MODELS``) and
``MIMLayerDecayOptimizerConstructor`` (``OPTIM_WRAPPER_CONSTRUCTORS``) and ``StrictSegmentorLoadHook``
(``HOOKS``: whole-segmentor checkpoints load strictly, mmseg's own MAE names converted), the seeded sampler,
dataset wrapper and hook of ``distributed`` (N processes == 1 process with accumulation), and makes mmengine load its
own checkpoints under torch's ``weights_only=True`` default (``checkpoint_loader``). Configs name it in
``custom_imports`` so mmseg's own tools find these modules too.
"""
from transfer.framework_warnings import quiet_framework_warnings

quiet_framework_warnings()  # before mmseg / mmcv / mmengine are imported
from .backbones import MIMConvMAE, MIMViT  # noqa: E402
from .checkpoint_loader import install_checkpoint_loader  # noqa: E402
from .distributed import MicroBatchSeedHook, SeededInfiniteSampler, SeededSamples  # noqa: E402
from .layer_decay import MIMLayerDecayOptimizerConstructor, get_layer_id  # noqa: E402
from .load_hook import StrictSegmentorLoadHook  # noqa: E402

install_checkpoint_loader()

__all__ = ["MIMViT", "MIMConvMAE", "MIMLayerDecayOptimizerConstructor", "StrictSegmentorLoadHook", "get_layer_id",
           "MicroBatchSeedHook", "SeededInfiniteSampler", "SeededSamples"]
