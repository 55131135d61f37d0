"""scripts/setup_env.sh: clones with the same pins share one environment of dependencies, and each clone's
.venv runs that clone's code. Before, the shared environment held the project as an editable install that
every setup repointed at the clone it ran in, so a second checkout silently ran the other one's code."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN_FILES = ("scripts/setup_env.sh", "pyproject.toml", "constraints.txt")  # what the environment's key hashes


def _clone_with_the_same_pins(path: Path) -> Path:
    """A checkout as setup_env.sh sees it: this one's pin files and a ``transfer`` package of its own."""
    for name in PIN_FILES:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, path / name)
    (path / "transfer").mkdir()
    (path / "transfer" / "__init__.py").write_text("")
    return path


def _imported_transfer(python: Path | str, cwd: Path) -> Path:
    """Where ``python -c`` run in ``cwd`` (a folder without a ``transfer``; -c puts the cwd first on the
    path) imports ``transfer`` from."""
    proc = subprocess.run([str(python), "-c", "import torch, transfer; print(transfer.__file__)"],
                          capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(proc.stdout.strip())


def test_two_clones_with_the_same_pins_each_run_their_own_code(tmp_path):
    clones = [_clone_with_the_same_pins(tmp_path / name) for name in ("a", "b")]
    env = {**os.environ, "MIM_REUSE_ONLY": "1"}  # never a 20-minute build from a test
    for clone in clones:
        proc = subprocess.run(["bash", str(clone / "scripts" / "setup_env.sh")], env=env, capture_output=True,
                              text=True, timeout=300)
        if proc.returncode == 3:
            pytest.skip("no environment is built for the working tree's pins yet: run scripts/setup_env.sh")
        assert proc.returncode == 0, proc.stderr[-2000:]
    for clone in clones:
        assert _imported_transfer(clone / ".venv" / "bin" / "python", tmp_path) == clone / "transfer" / "__init__.py"
    # the checkout running this suite still imports its own code after both setups
    assert _imported_transfer(sys.executable, tmp_path) == ROOT / "transfer" / "__init__.py"
