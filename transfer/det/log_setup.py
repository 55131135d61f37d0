"""detectron2's ``default_setup`` logs its environment table and torch's build configuration (about
2 KB) before anything useful. Keep them in the run's ``log.txt`` and off the screen."""
from __future__ import annotations

import logging
import sys

from detectron2.utils.logger import setup_logger

ENVIRONMENT_PREFIX = "Environment info:"


class _HideEnvironmentDump(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ENVIRONMENT_PREFIX)


def keep_environment_dump_off_screen(output_dir: str, rank: int) -> None:
    """Call right before ``default_setup(cfg, args)``: the detectron2 logger it sets up is memoised by
    ``setup_logger``'s arguments, so filtering the screen handler of the same call here applies there;
    the file handler still writes everything to ``output_dir/log.txt``."""
    logger = setup_logger(output_dir, distributed_rank=rank)
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.stderr):
            handler.addFilter(_HideEnvironmentDump())
