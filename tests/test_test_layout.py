"""The test suite's own layout: one conftest.py (tests/conftest.py). Test modules do ``from conftest import ...``;
pytest imports every conftest.py as a module named ``conftest``, so a second one (tests/x/conftest.py) makes that
import find the wrong file for every module collected after it (seen: tests/store/test_store_access.py)."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_the_only_conftest_is_tests_conftest() -> None:
    found = sorted(p.relative_to(TESTS).as_posix() for p in TESTS.rglob("conftest.py") if "node_modules" not in p.parts)
    assert found == ["conftest.py"], f"move the fixtures of {found} into tests/conftest.py"
