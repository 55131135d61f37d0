"""Load a command-line tool (tools/<name>.py) as a module, so a test runs its ``main`` / ``cli`` in the
test's own process (the frameworks are imported once)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"tool_{name}", TOOLS / f"{name}.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # (dataclasses look it up there)
    spec.loader.exec_module(module)
    return module
