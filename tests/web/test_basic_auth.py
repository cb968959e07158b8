"""web.basic_auth: Authorization: Basic against bcrypt hashes, the cache of a good check, and the bcrypt slots."""

from __future__ import annotations

import base64
import threading
import time

import bcrypt
import pytest

from pingaway_exporter.web import basic_auth
from pingaway_exporter.web.basic_auth import BasicAuthChecker
from tests.helpers.tls import PASSWORD, USER, bcrypt_hash

pytestmark = pytest.mark.unit


def header(user: str, password: str, scheme: str = "Basic") -> str:
    return f"{scheme} " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def checker():
    return BasicAuthChecker({USER: bcrypt_hash(PASSWORD).encode()})


@pytest.fixture
def calls(monkeypatch):
    """Every bcrypt.checkpw call, as (password, hash)."""
    made: list[tuple[bytes, bytes]] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        made.append((password, hashed))
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return made


def test_the_right_password_gives_the_user(checker):
    assert checker.check(header(USER, PASSWORD)) == USER


@pytest.mark.parametrize("scheme", ["basic", "BASIC"])
def test_the_scheme_is_case_insensitive(checker, scheme):
    assert checker.check(header(USER, PASSWORD, scheme)) == USER


def test_a_wrong_password_is_refused(checker):
    assert checker.check(header(USER, PASSWORD + "x")) is None


def test_an_unknown_user_is_checked_against_the_dummy_hash_and_refused(checker, calls):
    assert checker.check(header("nobody", PASSWORD)) is None
    assert calls == [(PASSWORD.encode(), basic_auth.DUMMY_HASH)]


def test_a_checker_without_users_refuses_everyone_at_the_cost_of_a_check(calls):
    assert BasicAuthChecker({}).check(header("x", "")) is None
    assert len(calls) == 1


@pytest.mark.parametrize("value", [None, "", "Bearer abc", "Basic", "Basic !!!notbase64",
                                   "Basic " + base64.b64encode(b"no-colon").decode(),
                                   "Basic " + base64.b64encode(b"\xff\xfe:x").decode()])
def test_a_malformed_header_is_refused_without_bcrypt(checker, calls, value):
    assert checker.check(value) is None
    assert calls == []


def test_a_password_longer_than_bcrypt_reads_is_refused():
    password = "p" * basic_auth.BCRYPT_MAX
    checker = BasicAuthChecker({"u": bcrypt_hash(password).encode()})
    assert checker.check(header("u", password)) == "u"
    assert checker.check(header("u", password + "tail")) is None  # bcrypt alone would accept it


def test_a_good_check_is_cached(checker, calls):
    assert checker.check(header(USER, PASSWORD)) == USER
    assert checker.check(header(USER, PASSWORD)) == USER
    assert len(calls) == 1


def test_a_bad_check_is_not_cached(checker, calls):
    assert checker.check(header(USER, "wrong")) is None
    assert checker.check(header(USER, "wrong")) is None
    assert len(calls) == 2


def test_the_cache_is_per_password_and_per_hash(calls):
    first = BasicAuthChecker({USER: bcrypt_hash(PASSWORD).encode()})
    assert first.check(header(USER, PASSWORD)) == USER
    assert first.check(header(USER, "other")) is None  # not the cached one
    changed = BasicAuthChecker({USER: bcrypt_hash("new-password").encode()})
    assert changed.check(header(USER, PASSWORD)) is None  # a new checker (a reload) starts empty
    assert len(calls) == 3


def test_the_cache_is_bounded(monkeypatch, calls):
    monkeypatch.setattr(BasicAuthChecker, "CACHE_LIMIT", 2)
    users = {f"u{i}": bcrypt_hash("pw").encode() for i in range(3)}
    checker = BasicAuthChecker(users)
    for name in users:
        assert checker.check(header(name, "pw")) == name
    assert len(calls) == 3
    # The third good check found the cache full and emptied it: u0 is checked again, u2 is still cached.
    assert checker.check(header("u2", "pw")) == "u2"
    assert len(calls) == 3
    assert checker.check(header("u0", "pw")) == "u0"
    assert len(calls) == 4


def test_a_hash_bcrypt_cannot_read_is_a_refusal():
    checker = BasicAuthChecker({"u": b"not-a-bcrypt-hash"})
    assert checker.check(header("u", "pw")) is None


def test_at_most_two_checks_run_bcrypt_at_once(monkeypatch):
    running, most, lock = 0, 0, threading.Lock()
    real = bcrypt.checkpw

    def slow(password: bytes, hashed: bytes) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)
            return real(password, hashed)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(bcrypt, "checkpw", slow)
    monkeypatch.setattr(basic_auth, "BCRYPT_WAIT", 10.0)
    checker = BasicAuthChecker({USER: bcrypt_hash(PASSWORD).encode()})
    results: list[str | None] = []

    def attempt(value: str) -> None:
        results.append(checker.check(value))

    threads = [threading.Thread(target=attempt, args=(header(USER, f"wrong{i}"),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [None] * 8
    assert most == 2


def test_a_check_that_gets_no_slot_is_refused_and_not_cached(monkeypatch, checker, calls):
    monkeypatch.setattr(basic_auth, "BCRYPT_WAIT", 0.05)
    taken = [basic_auth.BCRYPT_SLOTS.acquire(timeout=5) for _ in range(2)]
    try:
        assert taken == [True, True]
        assert checker.check(header(USER, PASSWORD)) is None
        assert calls == []
    finally:
        for _ in taken:
            basic_auth.BCRYPT_SLOTS.release()
    assert checker.check(header(USER, PASSWORD)) == USER


def test_repr_shows_neither_names_nor_hashes(checker):
    assert repr(checker) == "BasicAuthChecker(users=1)"
    assert USER not in repr(checker)
