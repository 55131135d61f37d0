"""House rules a reviewer checks, as tests (issue 20): no module over 400 lines outside tests, no
function over 60 lines (a constructor over 80)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pretrain", "transfer", "tools", "configs")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_CONSTRUCTOR_LINES = 80


def _sources(folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_function_is_too_long():
    long = []
    for path in _sources(PACKAGES + ("tests",)):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                limit = MAX_CONSTRUCTOR_LINES if node.name == "__init__" or path.parts[-2] == "tests" \
                    else MAX_FUNCTION_LINES
                if lines > limit:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_module_is_too_long():
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in _sources(PACKAGES)
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, long
