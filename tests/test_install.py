"""The package installs into an environment a detectron2 / mmseg user already has: its own
requirements are ranges (exact pins live in constraints.txt for scripts/setup_env.sh), and pretraining
plus the backbones import with torch and timm alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("detectron2", "mmseg", "mmcv", "mmengine")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_requirements_are_ranges_and_frameworks_are_extras():
    project = _project()
    base = project["dependencies"]
    assert not any("==" in r for r in base), base
    assert not any(r.split("[")[0].split(">")[0].split("<")[0].strip() in FRAMEWORKS for r in base), base
    extras = project["optional-dependencies"]
    assert {"det", "seg", "test"} <= set(extras)
    assert any(r.startswith("mmsegmentation") for r in extras["seg"])
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    pins = {line.split("==")[0].lower() for line in constraints if "==" in line}
    assert {"torch", "torchvision", "timm", "mmcv", "mmsegmentation", "mmengine"} <= pins


def test_pretrain_and_backbones_import_without_the_frameworks():
    blocker = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {FRAMEWORKS!r}:
                    raise ImportError("blocked for this test: " + name)
        sys.meta_path.insert(0, Block())
        import torch
        import pretrain, pretrain.models, pretrain.encoders, pretrain.weights, transfer.backbones
        import transfer.cls.train, transfer.results  # classification and the results table: torch + timm only
        from pretrain.models import build_model
        from transfer.backbones import build_backbone
        build_model("mae_vit_tiny")
        out = build_backbone("mae_vit_tiny")(torch.zeros(1, 3, 128, 128))
        print(sorted(out))
    """)
    proc = subprocess.run([sys.executable, "-c", blocker], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "last_feat" in proc.stdout


def _fake_distribution(site: Path, name: str, version: str) -> None:
    """Metadata of an installed ``name==version``: what pip's resolver sees of an existing install."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")


@pytest.mark.slow
@pytest.mark.parametrize("extra", ["", "[det]"])
def test_install_keeps_the_users_torch(tmp_path, extra):
    """pip's resolver, asked to install the package beside an older torch/torchvision, installs no
    torch. The older torch is represented by its metadata (the resolver reads nothing else)."""
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    _fake_distribution(site, "torch", "2.4.1")
    _fake_distribution(site, "torchvision", "0.19.1")
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
    proc = subprocess.run(
        [python, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
         "--report", str(report), f"{ROOT}{extra}"],
        capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    installed = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert "mimtoolkit" in installed
    assert not installed & {"torch", "torchvision"}, sorted(installed)
    assert not installed & {"mmcv", "mmsegmentation", "mmengine"}, sorted(installed)


def test_no_tool_shadows_a_package_and_tools_run_as_scripts(tmp_path):
    """Python puts a script's folder first on sys.path: a tools/<package>.py would shadow the package."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert {"pretrain", "transfer"} <= packages
    assert not {p.stem for p in (ROOT / "tools").glob("*.py")} & packages
    for tool in ("train_mim.py", "model_info.py"):
        proc = subprocess.run([sys.executable, str(ROOT / "tools" / tool), "--help"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "usage" in proc.stdout, proc.stderr[-2000:]
