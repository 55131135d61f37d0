"""Transfer of pretrained encoders to detection (detectron2) and segmentation (mmsegmentation)."""
