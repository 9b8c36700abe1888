"""Where the PAN tokenization key comes from: `LEDGERFLOW_PAN_TOKEN_KEY` (hex or url-safe base64), else
`LEDGERFLOW_PAN_TOKEN_KEY_FILE`, else `<data-dir>/secrets/pan-token.key` (created 0600 on first use); and the check
that it is the key the data directory's tokens were made with."""

from __future__ import annotations

import os
from pathlib import Path

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.pipeline.tokenize import PanTokenizer, TokenizerKeyError


def tokenizer_for(data_dir: Path) -> PanTokenizer:
    secret = os.environ.get("LEDGERFLOW_PAN_TOKEN_KEY")
    if secret:
        return PanTokenizer.from_secret_text(secret)
    key_file = os.environ.get("LEDGERFLOW_PAN_TOKEN_KEY_FILE")
    path = Path(key_file) if key_file else data_dir / "secrets" / "pan-token.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    return PanTokenizer.from_key_file(path)


class TokenKeyMismatchError(TokenizerKeyError):
    """The key at hand is not the one the data directory's card tokens were made with."""


def recorded_token_key_id(connection: sqlite3.Connection, key_id: str) -> str:
    """The key id this data directory's tokens are made with: the one recorded, or else `key_id`, recorded now
    (the first command that tokenizes here decides)."""
    row = connection.execute("SELECT key_id FROM pipeline_token_key WHERE id = 1").fetchone()
    if row is None:
        connection.execute("INSERT OR IGNORE INTO pipeline_token_key (id, key_id) VALUES (1, ?)", (key_id,))
        row = connection.execute("SELECT key_id FROM pipeline_token_key WHERE id = 1").fetchone()
    return str(row[0])


def tokenizer_for_ledger(data_dir: Path, connection: sqlite3.Connection) -> PanTokenizer:
    """`tokenizer_for`, refused when the data directory's tokens were made with another key: its tokens would match
    none of the directory's cards, and every event would be rejected `account_not_found` for good."""
    tokenizer = tokenizer_for(data_dir)
    recorded = recorded_token_key_id(connection, tokenizer.key_id)
    if recorded != tokenizer.key_id:
        raise TokenKeyMismatchError(
            f"this data directory's card tokens were made with key {recorded}, and the key given "
            f"(LEDGERFLOW_PAN_TOKEN_KEY, LEDGERFLOW_PAN_TOKEN_KEY_FILE or {data_dir}/secrets/pan-token.key) is "
            f"{tokenizer.key_id}: its tokens would match none of them. Use the data directory's key.")
    return tokenizer
