"""Running the real `ledgerflow` command in subprocesses against temporary data directories.

`run_cli(*args)` runs `python -m ledgerflow ...` with the environment cleaned of any LEDGERFLOW_* variable from
the caller (so a developer's settings never leak into a test); `run_cli_json` parses its one JSON object;
`start_cli` starts a long-running command (`run`) without waiting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CLI_TIMEOUT_SECONDS = 120


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGERFLOW_")}
    env.update(extra)
    return env


def _command(args: tuple[Any, ...]) -> list[str]:
    return [sys.executable, "-m", "ledgerflow", *(str(a) for a in args)]


def cli_command(*args: Any) -> list[str]:
    """The command line that runs `ledgerflow ARGS...` with this interpreter."""
    return _command(args)


def run_cli(*args: Any, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        _command(args),
        check=False,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"ledgerflow {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr}"
        )
    return done


def run_cli_json(*args: Any, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = run_cli(*args, "--json", env=env)
    value = json.loads(done.stdout)
    assert isinstance(value, dict)
    return value


def run_cli_json_and_stderr(*args: Any, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    done = run_cli(*args, "--json", env=env)
    value = json.loads(done.stdout)
    assert isinstance(value, dict)
    return value, done.stderr


def start_cli(*args: Any, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        _command(args), env=env or clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def data_dir_args(data_dir: Path) -> tuple[str, str]:
    return ("--data-dir", str(data_dir))
