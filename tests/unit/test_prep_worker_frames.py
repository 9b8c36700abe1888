"""Frames between the step and its prep worker: whole payloads across a pipe that takes them in pieces."""

from __future__ import annotations

import fcntl
import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerflow.pipeline.prep_worker import ANSWER_PIPE_BYTES, _read_frame, _widen_pipe, _write_frame


def pipe_pair() -> tuple[object, object]:
    read_fd, write_fd = os.pipe()
    return os.fdopen(read_fd, "rb", buffering=0), os.fdopen(write_fd, "wb", buffering=0)


def write_in_thread(writer: object, payloads: list[bytes], *, close: bool) -> threading.Thread:
    def run() -> None:
        for payload in payloads:
            _write_frame(writer, payload)  # type: ignore[arg-type]
        if close:
            writer.close()  # type: ignore[attr-defined]

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300),
                          st.integers(0, 3_000_000).map(lambda n: bytes(range(256)) * (n // 256) + b"x")),
                min_size=1, max_size=4))
def test_frames_arrive_whole_and_in_order_whatever_their_size(payloads: list[bytes]) -> None:
    reader, writer = pipe_pair()
    thread = write_in_thread(writer, payloads, close=True)
    try:
        # A frame far larger than the pipe (64 KiB by default here) arrives in many reads.
        assert [bytes(_read_frame(reader)) for _ in payloads] == payloads  # type: ignore[arg-type]
    finally:
        thread.join()
        reader.close()  # type: ignore[attr-defined]


def test_a_writer_gone_in_the_middle_of_a_frame_is_an_end_of_file() -> None:
    reader, writer = pipe_pair()
    # The header promises 1,000 bytes; only 10 come before the other end closes.
    writer.write((1_000).to_bytes(4, "little") + b"0123456789")  # type: ignore[attr-defined]
    writer.close()  # type: ignore[attr-defined]
    with pytest.raises(EOFError):
        _read_frame(reader)  # type: ignore[arg-type]
    reader.close()  # type: ignore[attr-defined]


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are a Linux feature")
def test_the_answer_pipe_is_widened_where_the_system_allows() -> None:
    reader, writer = pipe_pair()
    with open("/proc/sys/fs/pipe-max-size") as handle:
        allowed = int(handle.read())
    _widen_pipe(reader, ANSWER_PIPE_BYTES)  # type: ignore[arg-type]
    size = fcntl.fcntl(reader.fileno(), fcntl.F_GETPIPE_SZ)  # type: ignore[attr-defined]
    if allowed >= ANSWER_PIPE_BYTES:
        assert size == ANSWER_PIPE_BYTES
    else:  # refused: the pipe keeps a size of its own, and frames still cross it (test above)
        assert size >= 4_096
    reader.close()  # type: ignore[attr-defined]
    writer.close()  # type: ignore[attr-defined]
