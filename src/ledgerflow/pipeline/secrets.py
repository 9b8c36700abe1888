"""Where the PAN tokenization key comes from: `LEDGERFLOW_PAN_TOKEN_KEY` (hex or url-safe base64), else
`LEDGERFLOW_PAN_TOKEN_KEY_FILE`, else `<data-dir>/secrets/pan-token.key` (created 0600 on first use); and the check
that it is the key the data directory's tokens were made with."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

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


# `"panToken":"<key id>.` in a stored inbound event.
_STORED_KEY_ID = re.compile(rb'"panToken":"([A-Za-z0-9-]{1,16})\.')


def stored_token_key_ids(connection: sqlite3.Connection) -> set[str]:
    """Key ids of the tokens this data directory already holds: its card directory's and its newest inbound
    event's (two index reads)."""
    found = set()
    row = connection.execute("SELECT pan_token FROM card_accounts LIMIT 1").fetchone()
    if row is not None and "." in row[0]:
        found.add(row[0].split(".", 1)[0])
    row = connection.execute(
        "SELECT body FROM bus_messages WHERE stream = 'inbound' ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None and (match := _STORED_KEY_ID.search(bytes(row[0]))):
        found.add(match.group(1).decode())
    return found


def tokenizer_for_ledger(data_dir: Path, connection: sqlite3.Connection) -> PanTokenizer:
    """`tokenizer_for`, refused when the data directory's cards or events were tokenized with another key: its
    tokens would match none of them, and every event would be rejected `account_not_found` for good."""
    tokenizer = tokenizer_for(data_dir)
    others = stored_token_key_ids(connection) - {tokenizer.key_id}
    if others:
        raise TokenKeyMismatchError(
            f"this data directory's card tokens were made with key {', '.join(sorted(others))}, and the key given "
            f"(LEDGERFLOW_PAN_TOKEN_KEY, LEDGERFLOW_PAN_TOKEN_KEY_FILE or {data_dir}/secrets/pan-token.key) is "
            f"{tokenizer.key_id}: its tokens would match none of them. Use the data directory's key.")
    return tokenizer
