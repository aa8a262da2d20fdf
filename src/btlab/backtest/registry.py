"""Finding strategies and checking their parameters.

A strategy reference is either a bundled name (``sma_cross``), ``package.module:ClassName`` (importable from the
current environment), or ``path/to/file.py:ClassName``. The class must subclass ``backtrader.Strategy``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from btlab.backtest.compat import bt
from btlab.errors import StrategyLoadError, StrategyParameterError, UnknownStrategyError

#: Bundled strategies: name -> ``module:Class``.
BUNDLED: dict[str, str] = {
    "sma_cross": "btlab.strategies.sma_cross:SmaCross",
    "buy_hold": "btlab.strategies.buy_hold:BuyAndHold",
    "orb": "btlab.strategies.orb:OpeningRangeBreakout",
    "regime_fsm": "btlab.strategies.regime_fsm:RegimeFsm",
    "mp_tracker": "btlab.strategies.mp_tracker:MatchingPursuitTracker",
    "rl_tilt": "btlab.strategies.rl_tilt:RlTilt",
}


def _load_ref(ref: str) -> type:
    module_name, _, class_name = ref.partition(":")
    if not class_name:
        raise UnknownStrategyError(
            f"unknown strategy {ref!r}: use a bundled name ({', '.join(sorted(BUNDLED))}), "
            "package.module:ClassName or path/to/file.py:ClassName"
        )
    path: Path | None = None
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser().resolve()
            if not path.is_file():
                raise UnknownStrategyError(f"strategy file not found: {path}")
            spec = importlib.util.spec_from_file_location(f"btlab_user_{path.stem}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(spec.name, None)
                raise
        else:
            module = importlib.import_module(module_name)
    except UnknownStrategyError:
        raise
    except SyntaxError as exc:  # also IndentationError/TabError: name the file and line, as Python does
        where = f"{exc.filename or path or module_name}, line {exc.lineno}" if exc.lineno else str(exc.filename)
        raise StrategyLoadError(f"strategy {ref!r}: {type(exc).__name__} in {where}: {exc.msg}") from exc
    except ImportError as exc:
        raise UnknownStrategyError(f"cannot import module {module_name!r} for strategy {ref!r}: {exc}") from None
    except Exception as exc:  # the module raised while being imported
        raise StrategyLoadError(
            f"strategy {ref!r}: {type(exc).__name__} while importing {_where_raised(exc, path, module_name)}: {exc}"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, bt.Strategy)
                       and v.__module__ == module.__name__)
        raise UnknownStrategyError(
            f"module {module_name!r} has no class {class_name!r}; strategies in it: {', '.join(found) or 'none'}"
        )
    if not (inspect.isclass(cls) and issubclass(cls, bt.Strategy)):
        raise UnknownStrategyError(f"{ref!r} is not a backtrader.Strategy subclass")
    return cls


def _where_raised(exc: BaseException, path: Path | None, module_name: str) -> str:
    """``file, line N`` of the deepest frame of the traceback inside the user's file or module."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if (path is not None and Path(f.filename) == path)
            or (path is None and module_name.replace(".", "/") in f.filename.replace("\\", "/"))]
    frame = (mine or frames or [None])[-1]
    if frame is None:
        return str(path or module_name)
    return f"{frame.filename}, line {frame.lineno}"


def resolve_strategy(strategy: str | type) -> tuple[str, type]:
    """Find a strategy class.

    Args:
        strategy: a bundled name, ``module:Class``, ``file.py:Class`` or a ``bt.Strategy`` subclass.

    Returns:
        ``(reference, class)`` where reference is the bundled name or ``module:Class`` (recorded with the run).

    Raises:
        UnknownStrategyError: listing the bundled strategies and the accepted forms.
    """
    if inspect.isclass(strategy):
        if not issubclass(strategy, bt.Strategy):
            raise UnknownStrategyError(f"{strategy!r} is not a backtrader.Strategy subclass")
        for name, ref in BUNDLED.items():
            if ref == f"{strategy.__module__}:{strategy.__qualname__}":
                return name, strategy
        return f"{strategy.__module__}:{strategy.__qualname__}", strategy
    text = str(strategy).strip()
    if text in BUNDLED:
        return text, _load_ref(BUNDLED[text])
    if ":" not in text:
        raise UnknownStrategyError(
            f"unknown strategy {text!r}; bundled strategies: {', '.join(sorted(BUNDLED))}; "
            "or give your own as package.module:ClassName or path/to/file.py:ClassName"
        )
    return text, _load_ref(text)


def strategy_params(cls: type) -> dict[str, Any]:
    """The strategy's parameters and their defaults, in declaration order."""
    params = cls.params
    return {name: getattr(params, name) for name in params._getkeys()}


def _coerce(name: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if isinstance(default, bool):
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if default is None:
            for conv in (int, float):
                try:
                    return conv(text)
                except ValueError:
                    pass
            return text
    except ValueError:
        raise StrategyParameterError(
            f"parameter {name}={text!r}: expected {type(default).__name__} (default {default!r})"
        ) from None
    return text


def coerce_params(cls: type, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``params`` against the strategy's and convert string values to each default's type.

    Returns: the full parameter set (defaults updated with ``params``).

    Raises:
        StrategyParameterError: an unknown name (the message lists the valid ones with defaults) or a value that
            cannot be converted.
    """
    known = strategy_params(cls)
    unknown = [k for k in (params or {}) if k not in known]
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in known.items()) or "none"
        raise StrategyParameterError(
            f"unknown parameter(s) {', '.join(unknown)} for strategy {cls.__name__}; its parameters: {listing}"
        )
    resolved = dict(known)
    for key, value in (params or {}).items():
        resolved[key] = _coerce(key, value, known[key])
    check_params(cls, resolved)
    return resolved


def check_params(cls: type, params: Mapping[str, Any]) -> None:
    """Run the strategy's own check of its parameters, if it has one.

    A strategy may define a classmethod ``validate_params(params: dict) -> None`` that raises ``ValueError`` (or
    ``TypeError``) with a one-line reason when a combination of parameters cannot work (e.g. ``sma_cross`` refuses
    ``fast >= slow``). It is called with the full parameter set before anything runs or is recorded.

    Raises:
        StrategyParameterError: the strategy's reason, naming the strategy.
    """
    validate = getattr(cls, "validate_params", None)
    if not callable(validate):
        return
    try:
        validate(dict(params))
    except (ValueError, TypeError) as exc:
        raise StrategyParameterError(f"strategy {cls.__name__}: {exc}") from None


def parse_param_pairs(pairs: list[str] | None) -> dict[str, str]:
    """Parse CLI ``name=value`` pairs.

    Raises:
        StrategyParameterError: a pair without ``=``.
    """
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise StrategyParameterError(f"--param {pair!r}: expected name=value")
        out[name.strip()] = value.strip()
    return out
