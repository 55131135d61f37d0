"""A detectron2 DatasetMapper for COCO-format sets whose instance masks are polygons, RLE, or both."""
from __future__ import annotations

import copy

from detectron2.data import DatasetMapper


def has_only_polygons(annotations: list[dict]) -> bool:
    """True when every instance that training keeps (not crowd) has a polygon mask or none."""
    return all(isinstance(a.get("segmentation", []), list) for a in annotations if not a.get("iscrowd", 0))


class AnyMaskDatasetMapper(DatasetMapper):
    """detectron2's DatasetMapper, except that an image with an RLE (or bitmask) instance mask is
    mapped with ``instance_mask_format="bitmask"``, which takes polygons and RLE alike; detectron2's
    polygon format fails on RLE ("Cannot create polygons"). Images whose masks are all polygons keep
    the configured format (polygon in the recipes), so COCO trains exactly as the official recipes."""

    def _transform_annotations(self, dataset_dict, transforms, image_shape):
        if self.instance_mask_format == "bitmask" or has_only_polygons(dataset_dict["annotations"]):
            return super()._transform_annotations(dataset_dict, transforms, image_shape)
        mapper = copy.copy(self)  # shallow: shares the augmentations, changes one flag for this image
        mapper.instance_mask_format = "bitmask"
        return DatasetMapper._transform_annotations(mapper, dataset_dict, transforms, image_shape)
