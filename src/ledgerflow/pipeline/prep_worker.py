"""A second process for the pipeline's pure stages: while the batch step works through one batch and commits it,
the worker reads the inbound events that follow it (a WAL reader: it never waits for the writer) and prepares
them (`prepare.PreparedSet`). The next step takes those results instead of running the stages itself, so the
Python work of one batch overlaps the database work of another, on a second core.

It also copies the WAL back into the database beside the writers, where SQLite allows it
(`adapters.sqlite.checkpoints_beside`), so that the step's transactions rarely do.

The worker holds no state that matters: it writes no rows, and whatever it prepares is only a shortcut for the
step's own `prepare_event` of the same bytes under the same card directory version. A result is used only for the
sequence number it was made for and when the worker saw the directory version the step sees; anything else, a late
answer, or a worker that died is simply prepared by the step itself. So exactly-once holds as before: the step
still decides duplicates, posts, emits and acknowledges in its one transaction.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import msgspec
import structlog

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.bus.transport import Delivery
from ledgerflow.config import env_switch
from ledgerflow.pipeline.cpu_pinning import CpuPinning, pinning_wanted
from ledgerflow.pipeline.dedup import DuplicateKeyConfig
from ledgerflow.pipeline.prepare import PreparedEvent, PreparedWire, from_wire, to_wire

log = structlog.get_logger(__name__)

# How long a step waits for the worker's answer before preparing the batch itself (and dropping the worker's
# answer when it comes). A batch of 4,000 takes the worker ~0.1-0.2 s.
ANSWER_WAIT_SECONDS = 2.0
PREP_WORKER_ENV = "LEDGERFLOW_PREP_WORKER"
# The id of the answer the worker sends once, unasked, when it is ready (requests count from 1).
READY_ANSWER_ID = 0
_FRAME_HEADER = struct.Struct("<I")
# An answer is ~1.6 KB per event (~6 MB for a batch of 4,000). Through a pipe of the default 64 KiB it crosses in
# ~100 pieces, each a wake-up of the reader and of the writer; Linux lets a pipe hold up to 1 MiB
# (/proc/sys/fs/pipe-max-size) without privileges.
ANSWER_PIPE_BYTES = 1 << 20


class WorkerOptions(msgspec.Struct, frozen=True):
    database_path: str
    rules: str
    duplicate_fields: tuple[str, ...]
    duplicate_window_seconds: int
    publish_intermediate_events: bool
    inbound_stream: str
    # Frames waiting in the WAL that call for a checkpoint beside the writers (checkpoints_beside.CHECKPOINT_FRAMES).
    checkpoint_beside_frames: int


_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(tuple[int, int, int] | None).decode
_decode_answer = msgspec.msgpack.Decoder(tuple[int, int, list[PreparedWire]]).decode


def prep_worker_wanted() -> bool:
    """On by default where there is a second core; `LEDGERFLOW_PREP_WORKER=0` turns it off, `=1` on."""
    wanted = env_switch(PREP_WORKER_ENV)
    return wanted if wanted is not None else (os.cpu_count() or 1) > 1


class PrepWorker:
    """The step's side of the worker: ask for the batch after this one, take the answer at the next step."""

    def __init__(self, database_path: Path, *, rules: str, duplicates: DuplicateKeyConfig,
                 publish_intermediate_events: bool, inbound_stream: str) -> None:
        from ledgerflow.adapters.sqlite import checkpoints_beside

        options = WorkerOptions(str(database_path), rules, duplicates.fields, duplicates.window_seconds,
                                publish_intermediate_events, inbound_stream, checkpoints_beside.CHECKPOINT_FRAMES)
        # Decided before the process starts: a bad LEDGERFLOW_PIN_CPUS must not leave a worker behind.
        pin_cpus = pinning_wanted()
        # A module run, not a fork or multiprocessing spawn: the worker never depends on the caller's main module.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ledgerflow.pipeline.prep_worker", msgspec.json.encode(options).decode()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._requests: IO[bytes] = self._process.stdin
        self._answers: IO[bytes] = self._process.stdout
        _widen_pipe(self._answers, ANSWER_PIPE_BYTES)
        # This process (the step) on one CPU, the worker on the others (see cpu_pinning); undone at close.
        self._pinning = CpuPinning(self._process.pid) if pin_cpus else None
        self._request_id = 0
        self._waiting_for: int | None = None
        # Until the worker has said it is ready (its imports done), a step never waits for it.
        self._ready = False
        self.broken = False
        self.events_prepared = 0

    def wait_until_ready(self, timeout_s: float = 30.0) -> bool:
        """Block until the worker has started (a step never waits for that by itself); False if it did not."""
        if self._ready or self.broken:
            return self._ready
        try:
            readable, _w, _x = select.select([self._answers], [], [], timeout_s)
            if readable and _decode_answer(_read_frame(self._answers))[0] == READY_ANSWER_ID:
                self._ready = True
        except (EOFError, OSError, msgspec.DecodeError) as exc:
            self._give_up(exc)
        return self._ready

    def request_after(self, deliveries: Sequence[Delivery], limit: int) -> None:
        """Ask for the `limit` inbound events after the newest fresh one of `deliveries` (the next batch)."""
        if self.broken or self._waiting_for is not None:
            return
        after_seq = max((d.seq for d in deliveries if not d.scheduled), default=0)
        if not after_seq:
            return
        self._request_id += 1
        try:
            _write_frame(self._requests, _encode((self._request_id, after_seq, limit)))
        except (OSError, ValueError) as exc:
            self._give_up(exc)
            return
        self._waiting_for = self._request_id

    def take(self, deliveries: Sequence[Delivery], directory_version: int | None) -> dict[int, PreparedEvent]:
        """The worker's results for these deliveries, by sequence number: only those it prepared, under the same
        directory version (the rest, and everything when it is late or gone, the step prepares itself)."""
        if self._waiting_for is None or self.broken:
            return {}
        try:
            while True:
                wait_s = ANSWER_WAIT_SECONDS if self._ready else 0.0
                readable, _w, _x = select.select([self._answers], [], [], wait_s)
                if not readable:
                    # Late (or still starting): go on without it; its answer is dropped when it comes.
                    if self._ready:
                        log.warning("pipeline.prep_worker_late", waited_s=ANSWER_WAIT_SECONDS)
                    self._waiting_for = None
                    return {}
                request_id, version, prepared = _decode_answer(_read_frame(self._answers))
                if request_id == READY_ANSWER_ID:
                    self._ready = True
                elif request_id == self._waiting_for:
                    self._waiting_for = None
                    break
        except (EOFError, OSError, msgspec.DecodeError) as exc:
            self._give_up(exc)
            return {}
        if version != directory_version:
            return {}
        wanted = {d.seq for d in deliveries if not d.scheduled}
        results = {wire.seq: from_wire(wire) for wire in prepared if not wire.local and wire.seq in wanted}
        self.events_prepared += len(results)
        return results

    def close(self) -> None:
        self._unpin()
        if not self.broken:
            try:
                _write_frame(self._requests, _encode(None))
            except (OSError, ValueError):
                pass
        try:
            self._requests.close()
        except OSError:
            pass
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._answers.close()

    def _give_up(self, exc: BaseException) -> None:
        log.warning("pipeline.prep_worker_gone", error=f"{type(exc).__name__}: {exc}")
        self.broken = True
        self._waiting_for = None
        # The step prepares everything itself from now on: it may use every CPU again.
        self._unpin()

    def _unpin(self) -> None:
        if self._pinning is not None:
            self._pinning.release()
            self._pinning = None


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    # The pipes are unbuffered: a write may take only part of a multi-megabyte answer (after a signal).
    frame = memoryview(_FRAME_HEADER.pack(len(payload)) + payload)
    while frame:
        written = stream.write(frame)
        if not written:
            raise OSError("the prep worker's pipe took no bytes")
        frame = frame[written:]


def _widen_pipe(stream: IO[bytes], size_bytes: int) -> None:
    """Ask for a pipe buffer of `size_bytes` (Linux); elsewhere, or when refused, the pipe keeps its size."""
    set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_pipe_size is None:
        return
    try:
        fcntl.fcntl(stream.fileno(), set_pipe_size, size_bytes)
    except OSError as exc:
        log.info("pipeline.prep_worker_pipe_default_size", error=f"{type(exc).__name__}: {exc}")


def _read_frame(stream: IO[bytes]) -> bytearray:
    (size,) = _FRAME_HEADER.unpack(_read_exactly(stream, _FRAME_HEADER.size))
    return _read_exactly(stream, size)


def _read_exactly(stream: IO[bytes], size: int) -> bytearray:
    """`size` bytes, read straight into one buffer (the decoders take any bytes-like object)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        got = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not got:
            raise EOFError("the other side of the prep worker's pipe closed")
        filled += got
    view.release()
    return buffer


def serve(options: WorkerOptions, requests: IO[bytes], answers: IO[bytes]) -> None:
    """The worker process: answer each request until told to stop or the step's process is gone."""
    from ledgerflow.adapters.sqlite.checkpoints_beside import CheckpointsBeside
    from ledgerflow.bootstrap import rules_engine
    from ledgerflow.gc_pause import collector_paused
    from ledgerflow.pipeline.directory import CardDirectory
    from ledgerflow.pipeline.prepare import PreparedSet

    connection = sqlite3.connect(f"file:{quote(str(options.database_path))}?mode=ro", uri=True, isolation_level=None)
    connection.execute("PRAGMA busy_timeout=60000")
    directory = CardDirectory(connection)
    duplicates = DuplicateKeyConfig(fields=options.duplicate_fields, window_seconds=options.duplicate_window_seconds)
    stages = PreparedSet(directory, rules_engine(options.rules), duplicates,
                         publish_intermediate_events=options.publish_intermediate_events)
    # The WAL's checkpoints, off the step's CPU where SQLite allows it (see checkpoints_beside): this process has
    # room between answers.
    checkpoints = CheckpointsBeside(options.database_path, checkpoint_frames=options.checkpoint_beside_frames)
    checkpoints.start()
    try:
        _write_frame(answers, _encode((READY_ANSWER_ID, 0, [])))
        ahead: _Ahead | None = None
        while True:
            try:
                request: Any = _decode_request(_read_frame(requests))
            except EOFError:
                return
            if request is None:
                return
            request_id, after_seq, limit = request
            with collector_paused():
                version, answer = _answer(connection, directory, stages, options.inbound_stream, after_seq, limit,
                                          ahead)
                _write_frame(answers, _encode((request_id, version, answer)))
                answers.flush()
                # A full batch: more is waiting, and the step's next request will very likely be for the events
                # after these. Prepare them now, while the step works through this batch, unless it already asks.
                ahead = None
                if len(answer) == limit and not _readable(requests):
                    ahead = _prepare_after(connection, directory, stages, options.inbound_stream, answer[-1].seq,
                                           limit)
    finally:
        checkpoints.stop()
        connection.close()


class _Ahead(msgspec.Struct, frozen=True):
    """A batch prepared before it was asked for: the events after `after_seq` (at most `limit`), under the card
    directory version `version`."""

    after_seq: int
    limit: int
    version: int
    prepared: list[PreparedWire]


def _answer(connection: sqlite3.Connection, directory: Any, stages: Any, stream: str, after_seq: int, limit: int,
            ahead: _Ahead | None) -> tuple[int, list[PreparedWire]]:
    """The directory version and the prepared events after `after_seq` (at most `limit`): what was prepared ahead
    for exactly this request, when the directory is still the one it was prepared under (topped up with events that
    came since, if it was not a full batch), else prepared now. Rows are read in one snapshot and prepared after
    it ends: a reader's snapshot holds back the checkpoints beside the writers."""
    connection.execute("BEGIN")
    try:
        directory.refresh_if_changed(connection)
        version = directory.version or 0
        prepared: list[PreparedWire] = []
        if ahead is not None and (ahead.after_seq, ahead.limit, ahead.version) == (after_seq, limit, version):
            prepared = ahead.prepared
            after_seq = prepared[-1].seq if prepared else after_seq
        rows = _read_after(connection, stream, after_seq, limit - len(prepared)) if len(prepared) < limit else []
    finally:
        connection.execute("COMMIT")
    return version, (prepared + _prepare_rows(stages, rows) if rows else prepared)


def _prepare_after(connection: sqlite3.Connection, directory: Any, stages: Any, stream: str, after_seq: int,
                   limit: int) -> _Ahead:
    return _Ahead(after_seq, limit, *_answer(connection, directory, stages, stream, after_seq, limit, None))


def _read_after(connection: sqlite3.Connection, stream: str, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
    return connection.execute(
        "SELECT seq, body FROM bus_messages WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
        (stream, after_seq, limit),
    ).fetchall()


def _prepare_rows(stages: Any, rows: list[tuple[int, bytes]]) -> list[PreparedWire]:
    return [_prepared_or_local(stages, seq, bytes(body)) for seq, body in rows]


def _readable(stream: IO[bytes]) -> bool:
    readable, _w, _x = select.select([stream], [], [], 0)
    return bool(readable)


def _prepared_or_local(stages: Any, seq: int, body: bytes) -> PreparedWire:
    """What the worker sends for one event; anything unexpected is left to the step, which has the means (retries,
    dead letters) to deal with it."""
    try:
        return to_wire(seq, stages.prepare_event(body))
    except Exception:  # noqa: BLE001 - the step prepares it again and meets the same problem itself
        return PreparedWire(seq, True)


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: `run` drains and then closes the pipe, which ends this
    # process; it must not die first with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Answers go out on the original stdout; anything else that writes to stdout (a log line) goes to stderr.
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    try:
        serve(msgspec.json.decode(sys.argv[1].encode(), type=WorkerOptions), sys.stdin.buffer, answers)
    except BrokenPipeError:
        # The step's process is gone (killed): nobody is left to answer, and nothing here needs saying.
        os._exit(0)


if __name__ == "__main__":
    main()
