"""What our install provides (scripts/setup_env.sh): detectron2 with ViTDet's modules (from GitHub, or the
registry's pure-Python sal-detectron2 without its compiled ``_C``) and mmcv with its compiled ops, which
``mmseg.models`` needs. The frameworks' own behaviour is their test suites' business, not ours."""
from __future__ import annotations

import importlib.util


def test_detectron2_imports_with_vitdet_and_says_which_coco_evaluator_runs():
    from detectron2.modeling import SimpleFeaturePyramid, ViT  # noqa: F401  (ViTDet, absent in old releases)

    from transfer.det.data import USE_FAST_COCO_EVAL

    compiled = importlib.util.find_spec("detectron2._C") is not None
    assert USE_FAST_COCO_EVAL is compiled  # without _C, pycocotools evaluates (use_fast_impl=False)


def test_mmcv_compiled_ops_are_present():
    import mmcv._ext  # noqa: F401  (the C++ ops built by setup_env.sh; mmcv-lite lacks them)
    import mmseg.models  # noqa: F401  (needs them)
    from mmcv.ops import roi_align  # noqa: F401
