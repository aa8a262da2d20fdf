"""Parameter grids of a sweep: expansion, random sampling, constraints, combination ids (pure; reads only a YAML
file).

A grid is built from a YAML file (:meth:`Grid.from_yaml`), from inline specs (:meth:`Grid.from_specs`), from a
mapping of the YAML's shape (:meth:`Grid.from_mapping`), or from a file plus inline specs (:func:`make_grid`).

YAML form::

    params:
      fast: {range: [5, 50, 5]}     # inclusive range start, stop, step (integers, or floats if any is a float)
      slow: [20, 30, 60]            # a list of values
      flat_at_end: true             # a constant
    constraints: ["fast < slow", "fast * 2 <= slow"]
    sample: 500                     # optional: that many combinations drawn at random, without replacement
    seed: 7                         # the sampling seed (default 0)

Inline specs: ``name=5:60:5`` (inclusive range), ``name=a,b,c`` (list), ``name=x`` (constant); values that read
as numbers become numbers (``int`` first, then ``float``); an inline spec replaces a parameter of the file.

Order is deterministic: the Cartesian product in parameter order (file order, then new inline names), the last
parameter changing fastest; constraints keep that order; a sample keeps it too (drawn indices sorted).

Constraints are comparisons between parameters and numbers, parsed with :mod:`ast` against a whitelist (names of
the grid's parameters, int/float constants, ``+ - * / // %``, unary minus, comparisons ``< <= > >= == !=`` (chains
too), ``and``/``or``/``not``); nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import math
import operator
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from btlab.errors import InvalidArgumentError

__all__ = ["MAX_COMBINATIONS", "Grid", "combo_id", "make_grid", "parse_spec"]

#: Largest Cartesian product a grid may have before constraints and sampling (each combination is a dict in memory).
MAX_COMBINATIONS = 2_000_000


# ---- values -------------------------------------------------------------------------------------------------------
def _number(text: str) -> Any:
    """``text`` as int, else float, else the stripped string."""
    text = text.strip()
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _range_values(start: Any, stop: Any, step: Any, where: str) -> list[Any]:
    """Inclusive range ``start..stop`` by ``step``: ints when all three are ints, else floats (rounded to 12
    decimals, so 0.1 steps give 0.3, not 0.30000000000000004).

    Raises:
        InvalidArgumentError: a bound that is not a number, ``step <= 0``, ``stop < start`` (naming ``where``).
    """
    bounds = (start, stop, step)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bounds):
        raise InvalidArgumentError(f"{where}: a range needs three numbers start, stop, step; got {list(bounds)}")
    if step <= 0:
        raise InvalidArgumentError(f"{where}: range step must be > 0, got {step}")
    if stop < start:
        raise InvalidArgumentError(f"{where}: range stop {stop} is below start {start}")
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    if n > MAX_COMBINATIONS:
        raise InvalidArgumentError(f"{where}: range has {n:,} values, more than the cap of {MAX_COMBINATIONS:,}")
    if all(isinstance(v, int) for v in bounds):
        return [start + i * step for i in range(n)]
    return [round(start + i * step, 12) for i in range(n)]


def _values(name: str, spec: Any, where: str) -> list[Any]:
    """A parameter's values from its YAML/mapping spec: ``{range: [a, b, s]}``, ``{values: [...]}``, a list, or a
    constant."""
    place = f"{where}: params.{name}"
    if isinstance(spec, Mapping):
        keys = set(spec)
        if keys == {"range"}:
            r = spec["range"]
            if not isinstance(r, (list, tuple)) or len(r) != 3:
                raise InvalidArgumentError(f"{place}: range must be [start, stop, step], got {r!r}")
            return _range_values(*r, where=place)
        if keys == {"values"}:
            return _values(name, list(spec["values"]), where)
        raise InvalidArgumentError(f"{place}: expected {{range: [start, stop, step]}}, {{values: [...]}}, a list or "
                                   f"a value; got keys {sorted(map(str, keys))}")
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise InvalidArgumentError(f"{place}: empty list of values")
        out = list(spec)
        if any(isinstance(v, (Mapping, list, tuple)) for v in out):
            raise InvalidArgumentError(f"{place}: list values must be numbers, strings or booleans")
        if len({json.dumps(v, sort_keys=True) for v in out}) != len(out):
            raise InvalidArgumentError(f"{place}: a value is listed twice in {out}")
        return out
    if spec is None:
        raise InvalidArgumentError(f"{place}: no value")
    return [spec]


def parse_spec(text: str) -> tuple[str, Any]:
    """One inline spec ``name=start:stop:step`` | ``name=a,b,c`` | ``name=x`` -> ``(name, mapping spec)`` (the
    spec in the YAML form: ``{"range": [...]}``, a list, or a constant).

    Raises:
        InvalidArgumentError: no ``=``, an empty name or value, a range that is not three numbers (naming the spec).
    """
    name, sep, value = str(text).partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise InvalidArgumentError(f"grid spec {text!r}: expected name=start:stop:step, name=a,b,c or name=value")
    if not name.isidentifier():
        raise InvalidArgumentError(f"grid spec {text!r}: {name!r} is not a parameter name")
    if ":" in value and "," not in value:
        parts = value.split(":")
        nums = [_number(p) for p in parts]
        if len(parts) != 3 or any(isinstance(v, str) for v in nums):
            raise InvalidArgumentError(f"grid spec {text!r}: a range is start:stop:step with three numbers")
        _range_values(*nums, where=f"grid spec {text!r}")
        return name, {"range": nums}
    if "," in value:
        items = [_number(v) for v in value.split(",")]
        if any(v == "" for v in items):
            raise InvalidArgumentError(f"grid spec {text!r}: an empty item in the list")
        return name, items
    return name, _number(value)


# ---- constraints -----------------------------------------------------------------------------------------------------
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
Env = Mapping[str, Any]


def _compile(node: ast.AST, names: set[str], text: str) -> Callable[[Env], Any]:
    """A closure evaluating the whitelisted expression ``node`` on a combination (raises for anything else)."""
    def bad(what: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"constraint {text!r}: {what} (allowed: parameter names, numbers, "
                                    "+ - * / // %, < <= > >= == !=, and/or/not)")

    if isinstance(node, ast.Expression):
        return _compile(node.body, names, text)
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise bad(f"unknown name {node.id!r} (grid parameters: {', '.join(sorted(names))})")
        key = node.id
        return lambda env: env[key]
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise bad(f"constant {node.value!r} is not a number")
        value = node.value
        return lambda env: value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        inner = _compile(node.operand, names, text)
        if isinstance(node.op, ast.USub):
            return lambda env: -inner(env)
        return lambda env: not inner(env)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        op, left, right = _BINOPS[type(node.op)], _compile(node.left, names, text), _compile(node.right, names, text)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.Compare) and all(type(o) in _CMPOPS for o in node.ops):
        terms = [_compile(node.left, names, text)] + [_compile(c, names, text) for c in node.comparators]
        ops = [_CMPOPS[type(o)] for o in node.ops]

        def compare(env: Env) -> bool:
            values = [t(env) for t in terms]
            return all(op(values[i], values[i + 1]) for i, op in enumerate(ops))

        return compare
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, names, text) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(p(env) for p in parts)
        return lambda env: any(p(env) for p in parts)
    raise bad(f"{type(node).__name__} is not allowed")


def compile_constraint(text: str, names: Iterable[str]) -> Callable[[Env], bool]:
    """Parse one constraint (see module docstring) into ``predicate(combination) -> bool``.

    Raises:
        InvalidArgumentError: a syntax error, an unknown name, an operation not in the whitelist, or an expression
            that is not a comparison/boolean (naming the constraint).
    """
    try:
        tree = ast.parse(str(text).strip(), mode="eval")
    except SyntaxError as exc:
        raise InvalidArgumentError(f"constraint {text!r}: not an expression ({exc.msg})") from None
    if not isinstance(tree.body, (ast.Compare, ast.BoolOp)) and not (
            isinstance(tree.body, ast.UnaryOp) and isinstance(tree.body.op, ast.Not)):
        raise InvalidArgumentError(f"constraint {text!r}: must be a comparison such as 'fast < slow'")
    fn = _compile(tree, set(names), str(text))

    def predicate(env: Env) -> bool:
        try:
            return bool(fn(env))
        except (ZeroDivisionError, TypeError):
            return False

    return predicate


# ---- the grid --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """A parameter grid.

    Attributes:
        values: parameter name -> its values, in order (the product's order).
        constraints: constraint expressions a combination must satisfy (all of them).
        sample: draw this many combinations (after constraints) at random without replacement; None = all.
        seed: the sampling seed.
        source: where the grid came from (a file path and/or ``inline``), for error messages.
        spec: the grid as a JSON-able mapping of the YAML form (stored in ``bt_sweeps.grid``;
            ``Grid.from_mapping(grid.spec)`` rebuilds it).
    """

    values: dict[str, list[Any]]
    constraints: tuple[str, ...] = ()
    sample: int | None = None
    seed: int = 0
    source: str = "grid"
    spec: dict[str, Any] = field(default_factory=dict, compare=False)

    # -- building --------------------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any], *, source: str = "grid") -> Grid:
        """A grid from the YAML form (``params``, optional ``constraints``, ``sample``, ``seed``).

        Raises:
            InvalidArgumentError: unknown keys, no parameters, a bad value spec, range, constraint, sample or seed,
                a product over :data:`MAX_COMBINATIONS` (naming ``source`` and the key).
        """
        if not isinstance(spec, Mapping):
            raise InvalidArgumentError(f"{source}: a grid is a mapping with params (and constraints, sample, seed)")
        unknown = sorted(set(map(str, spec)) - {"params", "constraints", "sample", "seed"})
        if unknown:
            raise InvalidArgumentError(f"{source}: unknown key(s) {', '.join(unknown)} "
                                       "(expected params, constraints, sample, seed)")
        params = spec.get("params")
        if not isinstance(params, Mapping) or not params:
            raise InvalidArgumentError(f"{source}: params must map each parameter to a range, a list or a value")
        values = {str(name): _values(str(name), v, source) for name, v in params.items()}
        constraints = spec.get("constraints") or []
        if isinstance(constraints, str):
            constraints = [constraints]
        if not isinstance(constraints, (list, tuple)) or not all(isinstance(c, str) for c in constraints):
            raise InvalidArgumentError(f"{source}: constraints must be a list of expressions such as 'fast < slow'")
        sample, seed = spec.get("sample"), spec.get("seed", 0)
        if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
            raise InvalidArgumentError(f"{source}: sample must be a whole number >= 1, got {sample!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgumentError(f"{source}: seed must be a whole number, got {seed!r}")
        canonical = {"params": {str(k): v for k, v in params.items()}}
        if constraints:
            canonical["constraints"] = list(constraints)
        if sample is not None:
            canonical.update(sample=sample, seed=seed)
        grid = cls(values=values, constraints=tuple(constraints), sample=sample, seed=seed, source=source,
                   spec=json.loads(json.dumps(canonical, default=str)))
        grid._check()
        return grid

    @classmethod
    def from_yaml(cls, path: str | Path, *, extra: Sequence[str] = ()) -> Grid:
        """A grid from a YAML file (see module docstring), with inline ``extra`` specs added or replacing params.

        Raises:
            InvalidArgumentError: the file is missing or not YAML (naming the file and line), or the grid is bad.
        """
        import yaml

        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidArgumentError(f"grid file {p}: cannot read it ({exc.strerror or exc})") from None
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{p}, line {mark.line + 1}" if mark is not None else str(p)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InvalidArgumentError(f"grid file {where}: not valid YAML ({problem})") from None
        if not isinstance(spec, Mapping):
            raise InvalidArgumentError(f"grid file {p}: expected a mapping with params (and constraints, sample, seed)")
        spec = dict(spec)
        if extra:
            spec["params"] = {**dict(spec.get("params") or {}), **dict(parse_spec(s) for s in extra)}
        return cls.from_mapping(spec, source=f"grid file {p}" + (" + inline specs" if extra else ""))

    @classmethod
    def from_specs(cls, specs: Sequence[str], *, constraints: Sequence[str] = (), sample: int | None = None,
                   seed: int = 0) -> Grid:
        """A grid from inline specs (``name=5:60:5``, ``name=a,b,c``, ``name=x``; see module docstring).

        Raises:
            InvalidArgumentError: no spec, a malformed spec, a parameter given twice, or a bad grid.
        """
        if not specs:
            raise InvalidArgumentError("no grid: give a grid file or name=start:stop:step specs")
        params: dict[str, Any] = {}
        for text in specs:
            name, value = parse_spec(text)
            if name in params:
                raise InvalidArgumentError(f"grid spec {text!r}: parameter {name} given twice")
            params[name] = value
        spec: dict[str, Any] = {"params": params, "constraints": list(constraints), "seed": seed}
        if sample is not None:
            spec["sample"] = sample
        return cls.from_mapping(spec, source="inline grid")

    def _check(self) -> None:
        total = math.prod(len(v) for v in self.values.values())
        if total > MAX_COMBINATIONS:
            raise InvalidArgumentError(f"{self.source}: {total:,} combinations before constraints, more than the cap "
                                       f"of {MAX_COMBINATIONS:,} (use fewer values or sample)")
        for c in self.constraints:
            compile_constraint(c, self.values)
        if not self.combinations():
            raise InvalidArgumentError(f"{self.source}: no combination satisfies the constraints "
                                       f"{'; '.join(self.constraints)}")

    # -- reading ---------------------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The parameter names, in order."""
        return list(self.values)

    @property
    def product_size(self) -> int:
        """Combinations before constraints and sampling."""
        return math.prod(len(v) for v in self.values.values())

    def combinations(self) -> list[dict[str, Any]]:
        """Every combination (``{name: value}``), in the deterministic order of the module docstring: the product,
        filtered by the constraints, then sampled (without replacement, seeded) if ``sample`` is set."""
        return _expand(self)

    def __len__(self) -> int:
        return len(self.combinations())

    def check_params(self, known: Iterable[str], strategy: str) -> None:
        """Refuse a parameter the strategy does not have.

        Raises:
            InvalidArgumentError: naming the unknown parameter(s) and listing the strategy's.
        """
        have = list(known)
        unknown = [n for n in self.values if n not in have]
        if unknown:
            raise InvalidArgumentError(f"{self.source}: strategy {strategy} has no parameter(s) "
                                       f"{', '.join(unknown)}; its parameters: {', '.join(have) or 'none'}")


def _expand(grid: Grid) -> list[dict[str, Any]]:
    names = grid.names
    predicates = [compile_constraint(c, names) for c in grid.constraints]
    combos = [dict(zip(names, vals)) for vals in itertools.product(*grid.values.values())]
    if predicates:
        combos = [c for c in combos if all(p(c) for p in predicates)]
    if grid.sample is not None and grid.sample < len(combos):
        picked = sorted(random.Random(grid.seed).sample(range(len(combos)), grid.sample))
        combos = [combos[i] for i in picked]
    return combos


def make_grid(grid: Grid | str | Path | Mapping[str, Any] | None = None, specs: Sequence[str] = ()) -> Grid:
    """The grid of a sweep: a :class:`Grid`, a YAML file path, a mapping of the YAML form, or None; plus inline
    ``specs`` (added, replacing a file's parameter of the same name).

    Raises:
        InvalidArgumentError: see :meth:`Grid.from_yaml`, :meth:`Grid.from_mapping`, :meth:`Grid.from_specs`.
    """
    if isinstance(grid, Grid):
        if not specs:
            return grid
        return Grid.from_mapping({**grid.spec, "params": {**grid.spec["params"], **dict(map(parse_spec, specs))}},
                                 source=grid.source + " + inline specs")
    if isinstance(grid, (str, Path)):
        return Grid.from_yaml(grid, extra=specs)
    if isinstance(grid, Mapping):
        if not specs:
            return Grid.from_mapping(grid)
        params = {**dict(grid.get("params") or {}), **dict(map(parse_spec, specs))}
        return Grid.from_mapping({**grid, "params": params}, source="grid + inline specs")
    return Grid.from_specs(list(specs))


def combo_id(strategy: str, params: Mapping[str, Any], data_hash: str | None, engine: str,
             config: Mapping[str, Any]) -> str:
    """A combination's stable short id: the first 12 hex digits of the sha256 of the canonical JSON (sorted keys,
    no spaces) of ``[strategy, params, data_hash, engine, config]``. A run's id is ``f"{sweep_id}-{combo_id}"``."""
    text = json.dumps([strategy, dict(params), data_hash, engine, dict(config)], sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
