"""Bind None and bytes parameters without the sqlite3 driver's search for an adapter.

CPython 3.11's sqlite3 module binds int, float, str and bytearray values as they are, but for any other value, None
and bytes included, it first looks for an adapter: the registry, then `__adapt__` on its protocol class (whose
absence is reported by formatting an AttributeError message, then discarded), then `__conform__` on the value. That
search cost ~2,000 instructions per such parameter: about 30% of inserting a postings row (a digest and five
NULLs), and one per message body on the bus. Registering adapters that return the value itself makes the first
lookup succeed; the values bound, and so the rows written, are the same. Both adapters are C functions (an empty
dict's `get`, which answers None for None, and `bytes.__bytes__`, which returns a bytes object itself): a Python
function, or the `bytes` type, costs a further ~300 instructions per call.

Even a registered adapter is found by building, hashing and looking up a key tuple: ~1,500 instructions per value
(callgrind). Cheaper still is not to bind it: `multirow.insert_rows` writes a column that is None in every row of a
batch as a NULL literal, or binds a stand-in for its None values, and binds the bytes of the columns it is told of as
bytearray, which the driver takes without the lookup. The postings insert uses both (a plain posting binds five
None and a digest). Message bodies stay bytes: copying ~1 KB bodies into bytearrays cost more than it saved (~1,400
instructions more per event through the pipeline).

The registry is the sqlite3 module's own, shared by every connection of the process (SQLAlchemy's included);
these two adapters change no value, so they change nothing for them either.
"""

from __future__ import annotations

from ledgerflow.adapters.sqlite.driver import sqlite3

_NOTHING: dict[object, None] = {}
# None for None (and for any other key, but it is registered for None alone).
_null = _NOTHING.get


def register_identity_adapters() -> None:
    """Idempotent; called before a connection is opened."""
    sqlite3.register_adapter(bytes, bytes.__bytes__)  # a bytes object itself: no copy
    sqlite3.register_adapter(type(None), _null)
