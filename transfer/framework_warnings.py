"""Warnings the frameworks raise from their own code that a user of this toolkit cannot act on, silenced
by message (nothing else is hidden). ``transfer.det`` and ``transfer.seg`` install the filters when they
are imported, before they import detectron2 / mmseg; tests/conftest.py installs them for each test.
mmengine logs some deprecations instead of warning: ``FrameworkLogLines`` drops those from a logger."""
from __future__ import annotations

import logging
import re
import warnings

# (message regex, category, module regex: where the warning is raised; "" = anywhere)
FRAMEWORK_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    # fvcore (imported by detectron2) scripts its focal losses with torch.jit.script at import
    (r"`torch\.jit\.script` is deprecated", FutureWarning, ""),
    # detectron2's ViT / MViT / Swin backbones import timm's old module path
    (r"Importing from timm\.models\.layers is deprecated", FutureWarning, ""),
    # detectron2's anchor generator calls torch.meshgrid without indexing= (ours always passes it)
    (r"torch\.meshgrid: in an upcoming release, it will be required to pass the indexing argument", UserWarning, ""),
    # mmseg builds its decode heads' losses with its own deprecated build_loss
    (r"``build_loss`` would be deprecated soon", UserWarning, ""),
    # mmseg's CrossEntropyLoss with the default avg_non_ignore=False, which the official recipes keep
    (r"Default ``avg_non_ignore`` is False", UserWarning, ""),
    # mmseg's SegVisualizationHook with draw=False, as mmseg's own default_runtime config sets it
    (r"The draw is False, it means that the hook for visualization will not take effect", UserWarning, ""),
    # detectron2's annotations_to_instances wraps pycocotools' read-only RLE masks with torch.from_numpy
    (r"The given NumPy array is not writable", UserWarning, r"detectron2\."),
)


def quiet_framework_warnings() -> None:
    """Ignore exactly the warnings of FRAMEWORK_WARNINGS."""
    for message, category, module in FRAMEWORK_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


# mmengine's CheckpointHook builds a FileClient (and its HardDiskBackend) whatever the config says
FRAMEWORK_LOG_LINES = re.compile(r'"FileClient" will be deprecated in future|"HardDiskBackend" is the alias of')


class FrameworkLogLines(logging.Filter):
    """A logger filter that drops the framework deprecation lines of FRAMEWORK_LOG_LINES."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not FRAMEWORK_LOG_LINES.search(record.getMessage())
