"""JSON Schema of the inbound ``TransactionAuthorized`` event, generated from the msgspec types.

The committed copies (docs/schemas/ and the packaged ledgerflow/schemas/) are regenerated with
``python -m ledgerflow.pipeline.schema``; a unit test fails when they drift from the types.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Final

import msgspec

from ledgerflow.domain.events import Envelope, InboundAuthorization

SCHEMA_FILE_NAME: Final = "transaction-authorized.schema.json"
SCHEMA_ID: Final = "https://ledgerflow.invalid/schemas/transaction-authorized.schema.json"


def transaction_authorized_schema() -> dict[str, Any]:
    """The schema of an EventBridge envelope carrying an inbound TransactionAuthorized detail."""
    schema = msgspec.json.schema(Envelope[InboundAuthorization])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "TransactionAuthorized (inbound, EventBridge envelope)",
        **schema,
    }


def schema_text() -> str:
    """The schema as the committed files hold it: sorted keys, 2-space indent, trailing newline."""
    encoded = msgspec.json.encode(transaction_authorized_schema(), order="sorted")
    return msgspec.json.format(encoded, indent=2).decode() + "\n"


def write_schema_files(repo_root: Path) -> list[Path]:
    """Write the schema into docs/schemas/ and src/ledgerflow/schemas/; returns the paths written."""
    text = schema_text()
    paths = [
        repo_root / "docs" / "schemas" / SCHEMA_FILE_NAME,
        repo_root / "src" / "ledgerflow" / "schemas" / SCHEMA_FILE_NAME,
    ]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return paths


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    for written in write_schema_files(root):
        print(written)
