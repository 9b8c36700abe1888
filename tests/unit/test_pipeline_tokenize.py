"""PAN tokenization: stable, keyed, url-safe, key id prefixed; key files created private and reused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.pipeline.tokenize import (
    PanTokenizer,
    TokenizerKeyError,
    default_key_id,
    last4,
    load_or_create_key,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
pans = st.from_regex(r"\A[0-9]{12,19}\Z")


@given(pans)
def test_token_is_stable_and_url_safe_with_key_id_prefix(pan: str) -> None:
    first, second = PanTokenizer(KEY_A), PanTokenizer(KEY_A)
    token = first.token(pan)
    assert token == second.token(pan) == first.token(pan)
    assert re.fullmatch(r"k[0-9a-f]{6}\.[A-Za-z0-9_-]{24}", token)
    assert token.startswith(default_key_id(KEY_A) + ".")
    assert pan not in token


@given(pans, pans)
def test_distinct_pans_give_distinct_tokens(pan: str, other: str) -> None:
    tokenizer = PanTokenizer(KEY_A)
    assert (tokenizer.token(pan) == tokenizer.token(other)) == (pan == other)


@given(pans)
def test_other_key_gives_other_token(pan: str) -> None:
    assert PanTokenizer(KEY_A, key_id="k1").token(pan) != PanTokenizer(KEY_B, key_id="k1").token(pan)


def test_explicit_key_id_and_validation() -> None:
    assert PanTokenizer(KEY_A, key_id="2026-a").token("4111111111111111").startswith("2026-a.")
    with pytest.raises(TokenizerKeyError):
        PanTokenizer(KEY_A, key_id="bad id")
    with pytest.raises(TokenizerKeyError):
        PanTokenizer(b"short")


def test_repr_shows_no_key_material() -> None:
    assert KEY_A.hex() not in repr(PanTokenizer(KEY_A)) and "key_id" in repr(PanTokenizer(KEY_A))


def test_from_secret_text_accepts_hex_and_base64() -> None:
    import base64

    pan = "4111111111111111"
    expected = PanTokenizer(KEY_A).token(pan)
    assert PanTokenizer.from_secret_text(KEY_A.hex()).token(pan) == expected
    text = base64.urlsafe_b64encode(KEY_A).decode().rstrip("=")
    assert PanTokenizer.from_secret_text(text).token(pan) == expected
    with pytest.raises(TokenizerKeyError):
        PanTokenizer.from_secret_text("not base64 !!")


def test_load_or_create_key_creates_private_file_once(tmp_path: Path) -> None:
    path = tmp_path / "pan.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [entry.name for entry in tmp_path.iterdir()] == ["pan.key"]  # no temporary left behind
    assert PanTokenizer.from_key_file(path).token("4111111111111111") == PanTokenizer(key).token(
        "4111111111111111"
    )


def test_load_or_create_key_rejects_short_file(tmp_path: Path) -> None:
    path = tmp_path / "pan.key"
    path.write_bytes(b"too short")
    with pytest.raises(TokenizerKeyError):
        load_or_create_key(path)


def test_last4() -> None:
    assert last4("4111111111111234") == "1234" == PanTokenizer(KEY_A).last4("4111111111111234")


@given(pans, st.binary(min_size=32, max_size=80))
def test_token_is_the_truncated_hmac_sha256_in_url_safe_base64(pan: str, key: bytes) -> None:
    # The token format is a contract: stored tokens must keep matching new ones under the same key.
    digest = hmac.new(key, pan.encode(), hashlib.sha256).digest()[:18]
    assert PanTokenizer(key, key_id="k1").token(pan) == "k1." + base64.urlsafe_b64encode(digest).decode()


def test_token_known_value() -> None:
    assert PanTokenizer(KEY_A, key_id="t1").token("4111111111111111") == "t1.BiIkEgE4KkWRL7IoKLP321FT"
