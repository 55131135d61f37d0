"""detectron2 glue: the only package that imports detectron2."""
from transfer.framework_warnings import quiet_framework_warnings

quiet_framework_warnings()  # before detectron2 (and fvcore) are imported
