"""btlab's packages import each other downward only (ARCHITECTURE.md, "Packages").

Every ``import`` statement under ``src/btlab`` is read with :mod:`ast` -- at module level, inside functions (the lazy
imports that keep start-up short), under ``if TYPE_CHECKING:`` -- and its target package must sit strictly below the
importing package in :data:`LAYERS`. Modules of the same package import each other freely; the root modules
(``btlab/__init__.py``, ``errors.py``, ``settings.py``, ``_pyfix.py``) may be imported from anywhere, and
``btlab/__init__.py`` itself is the facade that may import anything (lazily).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "btlab"

#: top to bottom: a package may import only packages of a LATER row. Packages in one row do not import each other.
#: ``strategies`` are plugins of the engine: they use ``backtest.compat``; ``backtest.registry`` finds them by name.
LAYERS: list[set[str]] = [
    {"cli"},
    {"report", "dashboards"},
    {"sweep", "evaluation", "rl"},
    {"strategies"},
    {"backtest"},
    {"stream", "marketdata"},
    {"store"},
    {"model"},
]

#: importable from anywhere (the package itself, and modules every layer needs)
ROOT = {"", "errors", "settings", "signals", "_pyfix"}


def _rank(package: str) -> int:
    for i, row in enumerate(LAYERS):
        if package in row:
            return i
    raise AssertionError(f"package btlab.{package} is in no layer of tests/test_layering.py: add it to LAYERS")


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def btlab_imports(path: Path, src: Path = SRC) -> list[tuple[int, str]]:
    """``(line, imported module)`` of every btlab import in ``path`` (a file under ``src``), wherever it is in the
    file; relative imports are resolved."""
    module = _module_name(path, src)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return [(line, name) for line, name in found if name == "btlab" or name.startswith("btlab.")]


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layering_violations(src: Path = SRC) -> list[str]:
    """``file:line: a -> b`` for every import that does not run downward."""
    out = []
    for path in sorted(src.rglob("*.py")):
        source = _top(_module_name(path, src))
        if source in ROOT and path.parent == src:
            if path.name == "__init__.py":
                continue  # the facade: lazy re-exports of the public API
            allowed_rank = None  # root modules import only root modules
        else:
            allowed_rank = _rank(source)
        for line, name in btlab_imports(path, src):
            target = _top(name)
            if target == source or target in ROOT:
                continue
            if allowed_rank is None or _rank(target) <= allowed_rank:
                out.append(f"{path.relative_to(src.parent)}:{line}: btlab.{source or '(root)'} -> {name}")
    return out


def test_every_package_is_in_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    for package in packages:
        _rank(package)


def test_imports_run_downward_only():
    """Before: backtest/runner.py imported report.html (BacktestResult.report) while report/html.py imports
    backtest.metrics -- the two packages depended on each other."""
    assert layering_violations() == []


def test_the_check_sees_function_level_and_relative_imports(tmp_path):
    src = tmp_path / "btlab"
    for package in ("store", "backtest"):
        (src / package).mkdir(parents=True)
        (src / package / "__init__.py").write_text("")
    (src / "__init__.py").write_text("")
    (src / "store" / "x.py").write_text("def f():\n    from ..backtest import runner\n")
    (src / "backtest" / "y.py").write_text("from btlab.store import x\nimport btlab.errors\n")
    assert layering_violations(src) == ["btlab/store/x.py:2: btlab.store -> btlab.backtest"]
