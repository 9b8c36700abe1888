"""Where ledgerflow keeps its data, and the few settings every entry point shares.

Config objects are frozen keyword-only dataclasses; nothing here runs at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = "./.ledgerflow"
DATA_DIR_ENV = "LEDGERFLOW_DATA_DIR"
DATABASE_URL_ENV = "LEDGERFLOW_DATABASE_URL"
SQLITE_FILE_NAME = "ledgerflow.sqlite3"


def env_switch(name: str) -> bool | None:
    """An on/off setting from the environment: True for "1", False for "0", None when unset or blank (the caller's
    default applies); anything else is refused with the variable's name."""
    setting = os.environ.get(name, "").strip()
    if not setting:
        return None
    if setting not in ("0", "1"):
        raise ValueError(f"{name} must be 0 or 1, not {setting!r}")
    return setting == "1"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data directory: the explicit argument, else $LEDGERFLOW_DATA_DIR, else ./.ledgerflow."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(chosen)


@dataclass(frozen=True, kw_only=True)
class Settings:
    data_dir: Path
    # SQLite durability: FULL fsyncs the WAL at every commit. NORMAL may lose the last transactions on a
    # power failure (never on a process crash) and is opt-in.
    sqlite_synchronous: str = "FULL"
    database_url: str | None = None

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / SQLITE_FILE_NAME

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str] | None = None) -> Settings:
        synchronous = os.environ.get("LEDGERFLOW_SQLITE_SYNCHRONOUS", "FULL").upper()
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"LEDGERFLOW_SQLITE_SYNCHRONOUS must be FULL or NORMAL, not {synchronous!r}")
        return cls(
            data_dir=resolve_data_dir(data_dir),
            sqlite_synchronous=synchronous,
            database_url=os.environ.get(DATABASE_URL_ENV),
        )
