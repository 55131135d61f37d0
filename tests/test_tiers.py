"""The fast tier's list of heavy tests (tests/conftest.py) names tests that exist: a renamed test would
otherwise drop silently into ``scripts/test.sh --fast``."""
from __future__ import annotations

from pathlib import Path

from conftest import HEAVY_FILES, HEAVY_TESTS

TESTS = Path(__file__).resolve().parent


def test_every_heavy_entry_names_an_existing_test():
    assert all((TESTS / name).is_file() for name in HEAVY_FILES | set(HEAVY_TESTS)), "a listed file is gone"
    stale = [f"{file}::{test}" for file, tests in HEAVY_TESTS.items() for test in tests
             if f"def {test}(" not in (TESTS / file).read_text()]
    assert not stale, stale
