"""User settings, from ``BTLAB_*`` environment variables (and a ``.env`` file in the working directory).

The ``.env`` file is read from the directory btlab runs in (not the repository's, not ``deploy/.env``); real
environment variables win over it. It may hold secrets (a ``BTLAB_STORE`` with a password, an API key): the
repository's ``.gitignore`` keeps it out of git, and the store address never appears in ``repr(settings)``.

:class:`Settings` (pydantic-settings) is the full, validated set, built on first use: importing this module does
not import pydantic, and :func:`store_address`, which every command asks, reads the environment directly when no
``.env`` file can change the answer (loading pydantic-settings costs about 0.3 s at start-up).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings as Settings

#: the dotenv file read from the working directory (values there lose to real environment variables)
ENV_FILE = ".env"
#: default of ``BTLAB_MAX_COMPRESSION_RATIO`` (see :func:`max_compression_ratio`)
DEFAULT_MAX_COMPRESSION_RATIO = 100.0


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "btlab"


@functools.cache
def _settings_class() -> type:
    from pydantic import AliasChoices, Field
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Settings(BaseSettings):
        """btlab settings.

        Attributes:
            home: folder for btlab's own files (``BTLAB_HOME``; default ``$XDG_DATA_HOME/btlab`` or
                ``~/.local/share/btlab``).
            store: store address (``BTLAB_STORE``): a DuckDB file path (default ``<home>/btlab.duckdb``), or a
                QuestDB address such as ``http::addr=localhost:9000;`` (see :func:`btlab.store.open_store`); may
                hold credentials, so it is left out of ``repr``.
            reports: folder where HTML reports are written (``BTLAB_REPORTS``; default ``./reports``).
            kafka: Kafka-protocol bootstrap servers (``BTLAB_KAFKA``, e.g. ``127.0.0.1:19092`` for the compose
                stack's Redpanda); None = no broker: jobs write to the store only.
            dask_scheduler: address of the Dask scheduler parameter sweeps run on (``BTLAB_DASK_SCHEDULER``, e.g.
                ``tcp://dask-scheduler:8786``); None = a local cluster started by the sweep.
            cryptocompare_api_key: CryptoCompare API key (``BTLAB_CRYPTOCOMPARE_API_KEY`` or
                ``CRYPTOCOMPARE_API_KEY``).
            lock_timeout: seconds a DuckDB store keeps retrying while another process holds its file's lock
                (``BTLAB_LOCK_TIMEOUT``; default 10).
            max_compression_ratio: largest ratio of uncompressed to compressed size accepted in a ``.csv.gz`` or
                ``.zip`` file (``BTLAB_MAX_COMPRESSION_RATIO``; default 100, see :func:`max_compression_ratio`).
        """

        model_config = SettingsConfigDict(env_prefix="BTLAB_", env_file=ENV_FILE, extra="ignore")

        home: Path = Field(default_factory=_default_home)
        store: str | None = Field(default=None, repr=False)
        reports: Path = Path("reports")
        kafka: str | None = None
        dask_scheduler: str | None = None
        lock_timeout: float = Field(default=10.0, ge=0)
        max_compression_ratio: float = Field(default=DEFAULT_MAX_COMPRESSION_RATIO, gt=1)
        cryptocompare_api_key: str | None = Field(
            default=None,
            validation_alias=AliasChoices("BTLAB_CRYPTOCOMPARE_API_KEY", "CRYPTOCOMPARE_API_KEY"),
            repr=False,
        )

        @property
        def store_address(self) -> str:
            """The configured store address, or the default DuckDB file under ``home``."""
            return self.store or str(self.home / "btlab.duckdb")

    Settings.__module__, Settings.__qualname__ = __name__, "Settings"
    return Settings


def __getattr__(name: str) -> Any:
    if name == "Settings":
        return _settings_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return _settings_class()()


def store_address() -> str:
    """The configured store address (``BTLAB_STORE``), else the default DuckDB file ``<home>/btlab.duckdb``.

    The same answer as ``get_settings().store_address``: read straight from the environment (names matched
    case-insensitively, as pydantic-settings does) when there is no ``.env`` file in the working directory,
    otherwise through :class:`Settings`.
    """
    if Path(ENV_FILE).exists():
        return get_settings().store_address
    env = {key.lower(): value for key, value in os.environ.items()}
    if env.get("btlab_store"):
        return env["btlab_store"]
    home = Path(env["btlab_home"]) if "btlab_home" in env else _default_home()
    return str(home / "btlab.duckdb")


def dask_scheduler() -> str | None:
    """``BTLAB_DASK_SCHEDULER`` (a Dask scheduler address such as ``tcp://host:8786``), or None when unset/empty;
    read like :func:`store_address` (fast without ``.env``)."""
    if Path(ENV_FILE).exists():
        value = get_settings().dask_scheduler
    else:
        value = {key.lower(): v for key, v in os.environ.items()}.get("btlab_dask_scheduler")
    return value.strip() if value and value.strip() else None


def lock_timeout() -> float:
    """``BTLAB_LOCK_TIMEOUT`` (seconds >= 0, default 10), read like :func:`store_address` (fast without ``.env``).

    Raises:
        StoreConfigError: the value is not a number >= 0 (one line naming the variable).
    """
    from btlab.errors import StoreConfigError

    if Path(ENV_FILE).exists():
        from pydantic import ValidationError

        try:
            return float(get_settings().lock_timeout)
        except ValidationError as exc:
            raise StoreConfigError(f"invalid BTLAB_LOCK_TIMEOUT: {exc.errors()[0]['msg']}") from None
    env = {key.lower(): value for key, value in os.environ.items()}
    text = env.get("btlab_lock_timeout")
    if text is None or not text.strip():
        return 10.0
    try:
        value = float(text)
    except ValueError:
        raise StoreConfigError(f"invalid BTLAB_LOCK_TIMEOUT: {text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise StoreConfigError(f"invalid BTLAB_LOCK_TIMEOUT: {text!r} must be a finite number of seconds >= 0")
    return value


def max_compression_ratio() -> float:
    """``BTLAB_MAX_COMPRESSION_RATIO`` (a number > 1, default 100), read like :func:`store_address`.

    A compressed input file (``.csv.gz``, ``.zip``) whose content is more than this many times its compressed size is
    refused as a decompression bomb (real market data CSVs compress about 3-10 times).

    Raises:
        InvalidArgumentError: the value is not a number > 1 (one line naming the variable).
    """
    from btlab.errors import InvalidArgumentError

    name = "BTLAB_MAX_COMPRESSION_RATIO"
    if Path(ENV_FILE).exists():
        from pydantic import ValidationError

        try:
            return float(get_settings().max_compression_ratio)
        except ValidationError as exc:
            raise InvalidArgumentError(f"invalid {name}: {exc.errors()[0]['msg']}") from None
    text = {key.lower(): value for key, value in os.environ.items()}.get(name.lower())
    if text is None or not text.strip():
        return DEFAULT_MAX_COMPRESSION_RATIO
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgumentError(f"invalid {name}: {text!r} is not a number") from None
    if not value > 1 or value == float("inf"):
        raise InvalidArgumentError(f"invalid {name}: {text!r} must be a finite number > 1")
    return value
