"""The tools print no warning that the frameworks raise from their own code (transfer/framework_warnings.py)."""
from __future__ import annotations

import logging
import subprocess
import sys
import warnings

from transfer.framework_warnings import FrameworkLogLines, quiet_framework_warnings

IMPORTS = "import transfer.det.train, transfer.seg.train; from detectron2.modeling import ViT"


def test_importing_the_transfer_runs_raises_no_framework_warning():
    """What tools/train_det.py and train_seg.py import, in a fresh process where any FutureWarning or
    UserWarning is an error (fvcore's torch.jit.script, detectron2's timm.models.layers import, ...)."""
    proc = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-W", "error::UserWarning", "-c", IMPORTS],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_filters_are_narrow():
    """Only the listed framework messages are dropped: the same category with another message still shows."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_framework_warnings()
        warnings.warn("`torch.jit.script` is deprecated. Please switch to torch.compile", FutureWarning)
        warnings.warn("our own deprecation", FutureWarning)
    assert [str(w.message) for w in caught] == ["our own deprecation"]
    keep = FrameworkLogLines()
    record = lambda msg: logging.LogRecord("mmengine", logging.WARNING, __file__, 1, msg, None, None)  # noqa: E731
    assert not keep.filter(record('"FileClient" will be deprecated in future. Please use io functions'))
    assert keep.filter(record("WEIGHTS: none"))
