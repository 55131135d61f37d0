"""Every ```python block of README.md and docs/*.md runs as printed, and every relative link resolves.

Convention (README.md and docs/ keep to it): each ```python block is self-contained (its own imports) and
cheap as printed (paper sizes on the meta device, or tiny sizes), so a user can paste it into a fresh
interpreter. This test executes each block verbatim, in a fresh namespace and an empty working
directory; its first line, a comment, names it.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, source) of every ```python block."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _BLOCK.finditer(text)]


BLOCKS = [(page, line, source) for page in PAGES for line, source in python_blocks(page.read_text())]


def _name(page: Path, line: int, source: str) -> str:
    first = source.splitlines()[0] if source.strip() else ""
    return f"{page.relative_to(ROOT)}:{line} {first.lstrip('# ')[:60]}"


def test_docs_show_each_framework_entry_point_in_a_runnable_block():
    """The documented ways to use our backbones in detectron2 and mmseg are all in executed blocks."""
    shown = "\n".join(source for _, _, source in BLOCKS)
    for entry_point in ("L(MIMBackbone)", "add_mim_backbone_config", 'type="MIMViT"'):
        assert entry_point in shown, f"no ```python block of README.md or docs/ uses {entry_point}"


@pytest.mark.parametrize("page, line, source", BLOCKS, ids=[_name(*b) for b in BLOCKS])
def test_python_block_runs_verbatim(page: Path, line: int, source: str, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile("\n" * (line - 1) + source, str(page), "exec")  # tracebacks give the page's line numbers
    exec(code, {"__name__": "__readme__"})


_LOCAL_LINK = re.compile(r"\]\(((?!https?://|#|mailto:)[^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_local_links_and_images_exist(page: Path):
    """Every relative link and image of a page (the claim's plots included) names a file of the repository."""
    targets = {m.group(1).split("#")[0] for m in _LOCAL_LINK.finditer(page.read_text())}
    missing = sorted(t for t in targets if t and not (page.parent / t).exists())
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


_LOCAL_IMAGE = re.compile(r"!\[[^\]]*" + _LOCAL_LINK.pattern)  # an image: a local link after "![alt"


def test_readme_shows_the_claims_plots():
    """Issue 18: README shows the claim's plots itself (images, not only a link to docs/CPU_CLAIM.md)."""
    images = {m.group(1) for m in _LOCAL_IMAGE.finditer((ROOT / "README.md").read_text())}
    assert {"docs/img/claim_seeds.png", "docs/img/claim_knn.png"} <= images
    assert any(i.startswith("docs/img/claim_finetune") for i in images)
