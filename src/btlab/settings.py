"""User settings, from ``BTLAB_*`` environment variables (and a ``.env`` file in the working directory)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "btlab"


class Settings(BaseSettings):
    """btlab settings.

    Attributes:
        home: folder for btlab's own files (``BTLAB_HOME``; default ``$XDG_DATA_HOME/btlab`` or
            ``~/.local/share/btlab``).
        store: store address (``BTLAB_STORE``): a DuckDB file path (default ``<home>/btlab.duckdb``), or a QuestDB
            address such as ``http::addr=localhost:9000;`` (see :func:`btlab.store.open_store`).
        reports: folder where HTML reports are written (``BTLAB_REPORTS``; default ``./reports``).
        kafka: Kafka-protocol bootstrap servers (``BTLAB_KAFKA``, e.g. ``127.0.0.1:19092`` for the compose
            stack's Redpanda); None = no broker: jobs write to the store only.
        cryptocompare_api_key: CryptoCompare API key (``BTLAB_CRYPTOCOMPARE_API_KEY`` or ``CRYPTOCOMPARE_API_KEY``).
        lock_timeout: seconds a DuckDB store keeps retrying while another process holds its file's lock
            (``BTLAB_LOCK_TIMEOUT``; default 10).
    """

    model_config = SettingsConfigDict(env_prefix="BTLAB_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    store: str | None = None
    reports: Path = Path("reports")
    kafka: str | None = None
    lock_timeout: float = Field(default=10.0, ge=0)
    cryptocompare_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("BTLAB_CRYPTOCOMPARE_API_KEY", "CRYPTOCOMPARE_API_KEY"),
        repr=False,
    )

    @property
    def store_address(self) -> str:
        """The configured store address, or the default DuckDB file under ``home``."""
        return self.store or str(self.home / "btlab.duckdb")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
