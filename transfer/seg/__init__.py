"""mmsegmentation glue: the only package that imports mmseg / mmcv / mmengine."""
