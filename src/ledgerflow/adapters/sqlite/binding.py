"""Bind None and bytes parameters without the sqlite3 driver's search for an adapter.

CPython 3.11's sqlite3 module binds int, float, str and bytearray values as they are, but for any other value, None
and bytes included, it first looks for an adapter: the registry, then `__adapt__` on its protocol class (whose
absence is reported by formatting an AttributeError message, then discarded), then `__conform__` on the value. That
search cost ~2,000 instructions per such parameter: about 30% of inserting a postings row (a digest and five
NULLs), and one per message body on the bus. Registering adapters that return the value itself makes the first
lookup succeed; the values bound, and so the rows written, are the same. Both adapters are C functions (an empty
dict's `get`, which answers None for None, and `bytes.__bytes__`, which returns a bytes object itself): a Python
function, or the `bytes` type, costs a further ~300 instructions per call.

Cheaper still is not to bind at all: `multirow.insert_rows` writes the None values of the columns it is told may be
NULL into the statement as NULL literals, and binds bytes values it is told of as bytearray, which the driver binds
without the search (about 1,400 and 700 instructions less per value, counted by callgrind).

The registry is the sqlite3 module's own, shared by every connection of the process (SQLAlchemy's included);
these two adapters change no value, so they change nothing for them either.
"""

from __future__ import annotations

import sqlite3

_NOTHING: dict[object, None] = {}
# None for None (and for any other key, but it is registered for None alone).
_null = _NOTHING.get


def register_identity_adapters() -> None:
    """Idempotent; called before a connection is opened."""
    sqlite3.register_adapter(bytes, bytes.__bytes__)  # a bytes object itself: no copy
    sqlite3.register_adapter(type(None), _null)
