"""The framework warnings a user cannot act on are filtered, and only those (transfer/framework_warnings.py).
That the tools print none is asserted where the tests run them anyway: test_det.py (train_det) and
test_checkpoint_io.py's ``_assert_refused`` (every tool that reads a checkpoint)."""
from __future__ import annotations

import logging
import warnings

from transfer.framework_warnings import FrameworkLogLines, quiet_framework_warnings


def test_filters_are_narrow():
    """Only the listed framework messages are dropped: the same category with another message still shows."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_framework_warnings()
        warnings.warn("`torch.jit.script` is deprecated. Please switch to torch.compile", FutureWarning)
        warnings.warn("our own deprecation", FutureWarning)
    assert [str(w.message) for w in caught] == ["our own deprecation"]
    keep = FrameworkLogLines()
    assert not keep.filter(_record('"FileClient" will be deprecated in future. Please use io functions'))
    assert keep.filter(_record("WEIGHTS: none"))


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("mmengine", logging.WARNING, __file__, 1, message, None, None)
