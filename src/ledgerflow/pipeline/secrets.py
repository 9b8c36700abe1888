"""Where the PAN tokenization key comes from: `LEDGERFLOW_PAN_TOKEN_KEY` (hex or url-safe base64), else
`LEDGERFLOW_PAN_TOKEN_KEY_FILE`, else `<data-dir>/secrets/pan-token.key` (created 0600 on first use)."""

from __future__ import annotations

import os
from pathlib import Path

from ledgerflow.pipeline.tokenize import PanTokenizer


def tokenizer_for(data_dir: Path) -> PanTokenizer:
    secret = os.environ.get("LEDGERFLOW_PAN_TOKEN_KEY")
    if secret:
        return PanTokenizer.from_secret_text(secret)
    key_file = os.environ.get("LEDGERFLOW_PAN_TOKEN_KEY_FILE")
    path = Path(key_file) if key_file else data_dir / "secrets" / "pan-token.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    return PanTokenizer.from_key_file(path)
