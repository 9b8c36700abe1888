"""Webhook targets: HTTP POST of the target's input, signed.

Config: `{"Endpoint": "https://...", "Secret": "...", "TimeoutSeconds": 5}`, or `"SecretEnv": "NAME"` to read the
secret from an environment variable at delivery time instead of storing it in the database. Headers:
`X-Ledgerflow-Timestamp: <unix seconds>` and `X-Ledgerflow-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>" with the secret>`; receivers recompute it and refuse stale timestamps. `X-Ledgerflow-Event-Id`
lets them drop repeats (delivery is at least once).

Outcomes (as EventBridge treats API destinations): 2xx delivered; 429 and 5xx, timeouts and connection errors
retryable; other 4xx (and 3xx, no redirects are followed) non-retryable; a host that does not resolve
non-retryable.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import socket
from typing import Final
from urllib.parse import urlsplit

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.router.arns import KIND_WEBHOOK
from ledgerflow.router.config import CALL_SECONDS_MAX
from ledgerflow.router.errors import TargetError, ValidationException
from ledgerflow.router.model import TargetSpec
from ledgerflow.router.targets.base import DeliveryRequest

TIMEOUT_SECONDS_DEFAULT: Final = 5.0
TIMEOUT_SECONDS_MAX: Final = float(CALL_SECONDS_MAX)
TIMESTAMP_HEADER: Final = "X-Ledgerflow-Timestamp"
SIGNATURE_HEADER: Final = "X-Ledgerflow-Signature"
EVENT_ID_HEADER: Final = "X-Ledgerflow-Event-Id"
RESPONSE_BYTES_MAX: Final = 4_096


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def validate_config(config: dict) -> None:
    endpoint = config.get("Endpoint")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https") \
            or not urlsplit(endpoint).hostname:
        raise ValidationException("A webhook target needs Config.Endpoint, an http(s) URL")
    secret, secret_env = config.get("Secret"), config.get("SecretEnv")
    if (secret is None) == (secret_env is None) or not isinstance(secret or secret_env, str) \
            or not (secret or secret_env):
        raise ValidationException("A webhook target needs Config.Secret (the HMAC key) or Config.SecretEnv")
    timeout = config.get("TimeoutSeconds", TIMEOUT_SECONDS_DEFAULT)
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= TIMEOUT_SECONDS_MAX:
        raise ValidationException(f"Config.TimeoutSeconds must be within (0, {TIMEOUT_SECONDS_MAX}]")


class WebhookTarget:
    kind = KIND_WEBHOOK
    transactional = False

    def available(self, target: TargetSpec) -> bool:
        return True

    def deliver(self, request: DeliveryRequest, tx: sqlite3.Connection | None) -> None:
        config = request.target.config
        url = urlsplit(config["Endpoint"])
        timestamp = str(request.now_ms // 1000)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(_secret(config), timestamp, request.payload),
                   EVENT_ID_HEADER: request.event_id}
        connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(url.hostname or "", url.port,
                                      timeout=float(config.get("TimeoutSeconds", TIMEOUT_SECONDS_DEFAULT)))
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        try:
            connection.request("POST", path, body=request.payload, headers=headers)
            response = connection.getresponse()
            status = response.status
            reason = response.read(RESPONSE_BYTES_MAX).decode("utf-8", errors="replace")[:200]
        except socket.gaierror as exc:
            raise TargetError("NO_RESOURCE", f"cannot resolve {url.hostname}: {exc}", retryable=False) from exc
        except (OSError, http.client.HTTPException) as exc:  # timeouts, refused, reset, bad responses
            raise TargetError("SDK_CLIENT_ERROR", f"{type(exc).__name__}: {exc}", retryable=True) from exc
        finally:
            connection.close()
        _raise_for_status(status, reason)


def _secret(config: dict) -> str:
    if "Secret" in config:
        return str(config["Secret"])
    secret = os.environ.get(str(config["SecretEnv"]))
    if not secret:
        # Retryable: the operator may set it; meanwhile the event waits under its retry policy.
        raise TargetError("NO_RESOURCE", f"environment variable {config['SecretEnv']} is not set", retryable=True)
    return secret


def _raise_for_status(status: int, reason: str) -> None:
    if 200 <= status < 300:
        return
    message = f"HTTP {status}: {reason}"
    if status == 429:
        raise TargetError("THROTTLING", message, retryable=True)
    if status >= 500:
        raise TargetError("ERROR_FROM_TARGET", message, retryable=True)
    raise TargetError("ERROR_FROM_TARGET", message, retryable=False)
