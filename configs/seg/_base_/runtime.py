# mmsegmentation 1.2.2 configs/_base_/default_runtime.py, plus the import that registers our
# backbones and the layer-decay constructor (transfer/seg), so mmseg's own tools can run these files.
custom_imports = dict(imports=['transfer.seg'], allow_failed_imports=False)
# load_from / resume load the whole segmentor strictly (mmengine's default leaves unmatched keys at
# init with a warning); mmseg's own MAE checkpoint names are converted (transfer/seg/load_hook.py)
custom_hooks = [dict(type='StrictSegmentorLoadHook')]
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
