"""web.webconfig_watch in process: one poll round at a time, on a pinned clock, against a real file."""

from __future__ import annotations

import pytest

from pingaway_exporter.config.webconfig import load
from pingaway_exporter.web.webconfig_watch import WebConfigWatcher
from tests.helpers.tls import PASSWORD, USER, bcrypt_hash

pytestmark = pytest.mark.unit

HASH = bcrypt_hash(PASSWORD, cost=4)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_changed_file_is_loaded_a_broken_one_kept_out_and_a_fixed_one_loaded_again(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  {USER}: {HASH}\n")
    clock, changes = Clock(), []
    watcher = WebConfigWatcher(load(str(path)), every=1.0, clock=clock, on_change=changes.append)
    assert watcher.poll() is None, "no round before `every` seconds have passed"
    clock.now += 1
    assert watcher.poll() is None and changes == [], "an unchanged file is not loaded again"

    path.write_text(f"basic_auth_users:\n  {USER}: {HASH}\n  other: {HASH}\n")
    clock.now += 1
    new = watcher.poll()
    assert new is not None and set(new.users) == {USER, "other"} and changes == [new]
    assert watcher.last_reload_successful and watcher.config is new

    path.write_text("basic_auth_users: [not, a, mapping]\n")
    clock.now += 1
    assert watcher.poll() is None
    assert not watcher.last_reload_successful and watcher.failures == 1 and watcher.config is new
    clock.now += 1
    assert watcher.poll() is None and watcher.failures == 1, "the same broken file is reported once"

    path.write_text(f"basic_auth_users:\n  {USER}: {HASH}\n")
    clock.now += 1
    fixed = watcher.poll()
    assert fixed is not None and set(fixed.users) == {USER} and watcher.last_reload_successful


def test_without_a_web_config_there_is_nothing_to_watch():
    watcher = WebConfigWatcher(None)
    watcher.start()
    assert watcher.poll() is None and watcher.last_reload_successful
    watcher.stop()
