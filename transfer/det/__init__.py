"""detectron2 glue: the only package that imports detectron2."""
