"""Predictions of a detector whose test inputs the data mapper padded to a fixed square.

ConvMAE's detection recipe (Alpha-VL/ConvMAE DET/configs/convmae/convmae_base_mask_rcnn_FPN_100ep.py)
resizes every test image so that its longer side is 1024 (ResizeShortestEdge 1024, max 1024) and pads
it at the right and bottom to 1024x1024 (FixedSizeCrop), as in training. The model then sees 1024x1024
inputs, and detectron2's ``detector_postprocess`` would rescale x and y separately from the padded size
(a 640x480 image's full-image box would come back as 640x360). ``PaddedInputRCNN`` first gives the
outputs the size of the resized image inside the padded input, so both axes are rescaled by the
resize factor, as the official code does with its one-factor ``lsj_postprocess``.
"""
from __future__ import annotations

from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import Instances


def resized_region(input_size: tuple[int, int], output_size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the image inside an input of ``input_size`` that holds an ``output_size`` image
    resized with its aspect ratio kept until it fills the input along one side, padding the rest at the
    right or bottom. Sides round as detectron2's ResizeShortestEdge rounds them. An input that is the
    resized image itself, without padding, is its own region."""
    in_h, in_w = input_size
    out_h, out_w = output_size
    scale = min(in_h / out_h, in_w / out_w)
    return min(in_h, int(out_h * scale + 0.5)), min(in_w, int(out_w * scale + 0.5))


class PaddedInputRCNN(GeneralizedRCNN):
    """detectron2's GeneralizedRCNN for test inputs padded before the model (the LSJ test geometry of
    ConvMAE): predictions are rescaled from the resized image's region of the input, not from the
    whole padded input. The test mapper must keep the aspect ratio (ResizeShortestEdge, ResizeScale)
    and pad at the right and bottom only (FixedSizeCrop); training is detectron2's, unchanged."""

    def inference(self, batched_inputs, detected_instances=None, do_postprocess: bool = True):
        results = super().inference(batched_inputs, detected_instances, do_postprocess=False)
        if not do_postprocess:
            return results
        return self._postprocess(results, batched_inputs, [r.image_size for r in results])

    @staticmethod
    def _postprocess(instances, batched_inputs, image_sizes):
        """detectron2's rescaling to each input's "height" x "width", from the region of the padded
        input that holds the image."""
        unpadded = []
        for results, inputs, size in zip(instances, batched_inputs, image_sizes):
            original = (inputs.get("height", size[0]), inputs.get("width", size[1]))
            unpadded.append(Instances(resized_region(size, original), **results.get_fields()))
        return GeneralizedRCNN._postprocess(unpadded, batched_inputs, [r.image_size for r in unpadded])
