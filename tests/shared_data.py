"""Where the shared reference data lives (conformance corpora, sample events), and the one rule for its absence:
skip with the reason on a developer's machine, fail under CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def conformance_dir() -> Path:
    """`$LEDGERFLOW_CONFORMANCE_DIR`, else `../shared/conformance` beside the repository."""
    configured = os.environ.get("LEDGERFLOW_CONFORMANCE_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "conformance"


def shared_data_dir() -> Path:
    return REPO_ROOT.parent / "shared" / "data"


def missing(reason: str) -> None:
    """Skip with `reason`, or fail with it under CI=true (where the data must be present)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)
