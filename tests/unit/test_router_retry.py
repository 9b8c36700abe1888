"""The retry decision: non-retryable errors, attempts and age exhaustion, full-jitter backoff bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.router.errors import ValidationException
from ledgerflow.router.model import RetryPolicy
from ledgerflow.router.retry import MAXIMUM_EVENT_AGE, MAXIMUM_RETRY_ATTEMPTS, Backoff, decide

BACKOFF = Backoff(base_ms=1_000, cap_ms=60_000)


def test_defaults_are_aws_defaults() -> None:
    assert RetryPolicy() == RetryPolicy(maximum_retry_attempts=185, maximum_event_age_seconds=86_400)


@pytest.mark.parametrize("value", [{"MaximumRetryAttempts": 186}, {"MaximumRetryAttempts": -1},
                                   {"MaximumEventAgeInSeconds": 59}, {"MaximumEventAgeInSeconds": 86_401},
                                   {"Other": 1}, {"MaximumRetryAttempts": "3"}])
def test_out_of_range_policies_are_refused(value: dict) -> None:
    with pytest.raises(ValidationException):
        RetryPolicy.from_json(value)


def test_non_retryable_gives_up_at_once_without_a_condition() -> None:
    decision = decide(RetryPolicy(), attempts=1, retryable=False, ingested_at_ms=0, now_ms=0, backoff=BACKOFF)
    assert decision.give_up and decision.exhausted_condition is None


def test_attempts_exhaustion_after_the_last_retry() -> None:
    policy = RetryPolicy(maximum_retry_attempts=2)
    first = decide(policy, attempts=1, retryable=True, ingested_at_ms=0, now_ms=0, backoff=BACKOFF)
    second = decide(policy, attempts=2, retryable=True, ingested_at_ms=0, now_ms=0, backoff=BACKOFF)
    third = decide(policy, attempts=3, retryable=True, ingested_at_ms=0, now_ms=0, backoff=BACKOFF)
    assert not first.give_up and not second.give_up
    assert third.give_up and third.exhausted_condition == MAXIMUM_RETRY_ATTEMPTS


def test_zero_retries_gives_up_after_the_first_attempt() -> None:
    decision = decide(RetryPolicy(maximum_retry_attempts=0), attempts=1, retryable=True, ingested_at_ms=0,
                      now_ms=0, backoff=BACKOFF)
    assert decision.exhausted_condition == MAXIMUM_RETRY_ATTEMPTS


def test_age_exhaustion() -> None:
    policy = RetryPolicy(maximum_event_age_seconds=60)
    young = decide(policy, attempts=1, retryable=True, ingested_at_ms=0, now_ms=60_000, backoff=BACKOFF)
    old = decide(policy, attempts=1, retryable=True, ingested_at_ms=0, now_ms=60_001, backoff=BACKOFF)
    assert not young.give_up
    assert old.give_up and old.exhausted_condition == MAXIMUM_EVENT_AGE


@given(attempts=st.integers(1, 185), seed=st.integers(0, 2**32))
def test_full_jitter_stays_within_the_exponential_ceiling(attempts: int, seed: int) -> None:
    delay = BACKOFF.delay_ms(attempts, random.Random(seed))
    assert 0 <= delay <= min(BACKOFF.cap_ms, BACKOFF.base_ms * 2 ** (attempts - 1))


def test_jitter_spreads_delays() -> None:
    rng = random.Random(1)
    delays = {BACKOFF.delay_ms(8, rng) for _ in range(50)}
    assert len(delays) > 40
