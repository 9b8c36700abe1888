"""The one SQLite driver module every SQLite connection of the project is opened with.

`pysqlite3` is the standard library's `sqlite3` module built with a SQLite of its own (3.53 in the pinned release)
instead of the one the Python interpreter links (3.40.1 on our machines). What that buys: SQLite 3.7.0 to 3.51.2 have
the WAL-reset race (https://sqlite.org/wal.html#walresetbug), which makes a checkpoint run by one connection beside
another connection's commits unsafe; with a fixed SQLite the WAL can be copied back by a connection that is not the
writer (`checkpoints_beside.CheckpointsBeside`), off the writer's CPU. Where `pysqlite3` is not installed the standard
library's module is used, and checkpoints stay under the writer's lock, as they must on an older SQLite.

Everything that talks to a SQLite database of ours must use `sqlite3` from here: the two modules have distinct
exception and connection classes, so an `except sqlite3.OperationalError` written against the other module would
miss the driver's errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
else:
    try:
        from pysqlite3 import dbapi2 as sqlite3
    except ImportError:  # pragma: no cover - the pinned dependency is installed everywhere we run
        import sqlite3

__all__ = ["WAL_RESET_RACE_FIXED", "sqlite3", "wal_reset_race_fixed"]


def wal_reset_race_fixed(version: tuple[int, int, int]) -> bool:
    """True for a SQLite without the WAL-reset race: 3.51.3 and later, and the backports 3.44.6 and 3.50.7."""
    return version >= (3, 51, 3) or (3, 50, 7) <= version < (3, 51, 0) or (3, 44, 6) <= version < (3, 45, 0)


# Whether the SQLite this process opens databases with lets a checkpoint run beside another connection's commits.
WAL_RESET_RACE_FIXED = wal_reset_race_fixed(sqlite3.sqlite_version_info)
