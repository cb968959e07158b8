"""config.redact: the registry of secret values and the scrubber every output runs."""

from __future__ import annotations

import gc
import uuid

import pytest

from pingaway_exporter.config.redact import (
    MIN_SECRET_LENGTH,
    PARTIAL_RUN,
    REDACTED,
    TRANSIENT_LIMIT,
    register_secret,
    register_secret_value,
    scrub,
    shorten,
)

pytestmark = pytest.mark.unit


def fresh() -> str:
    """A value no other test registers: the registry is process-wide."""
    return "S" + uuid.uuid4().hex


class Owner:
    """Stands for a config.secret.Secret: anything weak-referenceable."""


def test_a_registered_value_is_replaced_wherever_it_shows():
    value = fresh()
    register_secret_value(value)
    assert scrub(f"token={value}; again {value}") == f"token={REDACTED}; again {REDACTED}"


def test_an_unknown_value_passes_untouched():
    register_secret_value(fresh())
    other = fresh()
    assert scrub(f"id {other}") == f"id {other}"


def test_a_long_run_of_a_secret_is_redacted_even_when_cut_short():
    value = fresh()
    register_secret_value(value)
    cut = value[5:5 + PARTIAL_RUN + 3]
    assert scrub(f"reflected: {cut}") == f"reflected: {REDACTED}"


def test_a_run_shorter_than_the_partial_length_is_kept():
    value = fresh()
    register_secret_value(value)
    piece = value[3:3 + PARTIAL_RUN - 1]
    assert scrub(f"x {piece} y") == f"x {piece} y"


def test_a_short_value_is_never_registered():
    short = "w" * (MIN_SECRET_LENGTH - 1)
    register_secret_value(short)
    assert scrub(f"level={short}") == f"level={short}"


def test_a_value_lives_as_long_as_its_owner():
    value, owner = fresh(), Owner()
    register_secret(owner, [value, "tiny"])
    assert scrub(value) == REDACTED
    assert scrub("tiny value") == "tiny value"
    del owner
    gc.collect()
    assert scrub(value) == value


def test_only_the_latest_transient_values_are_kept():
    first = fresh()
    register_secret_value(first)
    for _ in range(TRANSIENT_LIMIT):
        register_secret_value(fresh())
    assert scrub(first) == first


def test_the_longest_value_is_replaced_first():
    short = fresh()
    longer = short + "-and-more-" + uuid.uuid4().hex
    register_secret_value(short)
    register_secret_value(longer)
    assert scrub(f"[{longer}]") == f"[{REDACTED}]"


def test_scrub_leaves_empty_and_non_text_alone():
    assert scrub("") == ""
    assert scrub(None) is None  # type: ignore[arg-type]


def test_shorten_scrubs_before_it_cuts():
    value = fresh()
    register_secret_value(value)
    text = "a" * 10 + value
    # Cut first, the secret's head would survive as a run shorter than PARTIAL_RUN... or longer: never.
    out = shorten(text, 20)
    assert value[:PARTIAL_RUN] not in out
    assert out == "a" * 10 + REDACTED


def test_shorten_cuts_with_an_ellipsis():
    assert shorten("b" * 50, 10) == "b" * 7 + "..."
    assert shorten("short", 10) == "short"
