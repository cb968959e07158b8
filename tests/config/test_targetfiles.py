"""target_files: declared targets spread over files (one domain a file), their errors, limits and reloads."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from pingaway_exporter.config.errors import ConfigError
from pingaway_exporter.config.targetfiles import load_config
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import ANY_PORT
from tests.helpers.served import URL, token_file, write

pytestmark = pytest.mark.unit


def test_targets_come_from_every_matched_file_with_their_labels(tmp_path):
    token_file(tmp_path / "tokens" / "acme")
    write(tmp_path / "pingaway.yml", {"targets": [{"name": "main", "url": URL, "token_file": "tokens/acme"}],
                                      "target_files": ["targets.d/*.yml"]})
    write(tmp_path / "targets.d" / "acme.yml", {"name": "acme", "url": URL, "token_file": "../tokens/acme",
                                                "labels": {"customer": "Acme AB", "tier": "gold"}})
    write(tmp_path / "targets.d" / "more.yml", [{"name": "globex", "url": URL, "token_file": "../tokens/acme"},
                                                {"name": "initech", "url": URL, "token_file": "../tokens/acme"}])
    write(tmp_path / "targets.d" / "notes.txt", {"name": "ignored", "url": URL, "token_file": "x"})
    settings = load_config(str(tmp_path / "pingaway.yml"))
    by_name = {t.name: t for t in settings.targets}
    assert sorted(by_name) == ["acme", "globex", "initech", "main"]
    assert by_name["acme"].labels == (("customer", "Acme AB"), ("tier", "gold"))
    # a relative credential path is relative to the file that names it
    assert by_name["acme"].token_file == str((tmp_path / "tokens" / "acme").resolve())


@pytest.mark.parametrize(("content", "field"), [
    ({"name": "acme", "url": URL, "token_file": "t", "colour": "red"}, ": colour: unknown key"),
    ({"name": "acme", "url": URL, "token": "abc.def.ghi"}, ": token: secrets are not accepted"),
    ([{"name": "ok", "url": URL, "token_file": "t"}, {"name": "b c", "url": URL, "token_file": "t"}], ": [1].name"),
    ({"name": "acme", "url": URL, "token_file": "t", "labels": {"job": "x"}}, ": labels.job: job is set by"),
    ({"name": "acme", "url": URL, "token_file": "t", "labels": {"__x": "y"}}, ": labels.__x: a label name"),
    ({"name": "acme", "url": "http://u:secretpw@127.0.0.1/api/", "token_file": "t"}, ": url:"),
    ("just a string", ": a target file must hold one target"),
])
def test_a_bad_target_file_is_named_with_its_field(tmp_path, content, field):
    write(tmp_path / "c.yml", {"target_files": ["t.d/*.yml"]})
    write(tmp_path / "t.d" / "acme.yml", content)
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "c.yml"))
    message = str(info.value)
    assert message.startswith(f"config.file {tmp_path / 'c.yml'}: target file {tmp_path / 't.d' / 'acme.yml'}")
    assert field in message, message
    assert "abc.def.ghi" not in message and "secretpw" not in message


def test_a_name_declared_twice_across_files_names_both(tmp_path):
    write(tmp_path / "c.yml", {"targets": [{"name": "acme", "url": URL, "token_file": "t"}],
                               "target_files": ["t.d/*.yml"]})
    write(tmp_path / "t.d" / "a.yml", {"name": "globex", "url": URL, "token_file": "t"})
    write(tmp_path / "t.d" / "b.yml", {"name": "acme", "url": URL, "token_file": "t"})
    with pytest.raises(ConfigError, match=r"b\.yml: name: 'acme' is already the name of targets\[0\]"):
        load_config(str(tmp_path / "c.yml"))
    write(tmp_path / "t.d" / "b.yml", {"name": "globex", "url": URL, "token_file": "t"})
    with pytest.raises(ConfigError, match=r"b\.yml: name: 'globex' is already the name of target file .*a\.yml"):
        load_config(str(tmp_path / "c.yml"))


def test_each_target_file_has_its_own_1_mib_limit(tmp_path):
    write(tmp_path / "c.yml", {"target_files": ["t.d/*.yml"]})
    padding = "# " + "x" * 1000 + "\n"
    body = yaml.safe_dump({"name": "acme", "url": URL, "token_file": "t"})
    (tmp_path / "t.d").mkdir()
    (tmp_path / "t.d" / "a.yml").write_text(padding * 900 + body)  # 0.9 MB: fine alone, and beside others
    (tmp_path / "t.d" / "b.yml").write_text(padding * 900 + body.replace("acme", "globex"))
    assert len(load_config(str(tmp_path / "c.yml")).targets) == 2
    (tmp_path / "t.d" / "b.yml").write_text(padding * 1100 + body)
    with pytest.raises(ConfigError, match=r"target file .*b\.yml: 1103354 bytes, more than the 1048576-byte limit"):
        load_config(str(tmp_path / "c.yml"))


def test_a_bad_target_file_at_startup_exits_2_naming_it(tmp_path, capsys):
    from pingaway_exporter.cli import main
    write(tmp_path / "c.yml", {"target_files": ["t.d/*.yml"]})
    write(tmp_path / "t.d" / "acme.yml", {"name": "acme", "url": URL, "token_file": "missing.token"})
    assert main(["--config.file", str(tmp_path / "c.yml"), *ANY_PORT]) == 2
    err = capsys.readouterr().err
    assert "target file" in err and "acme.yml: token_file" in err and "Traceback" not in err
    write(tmp_path / "t.d" / "acme.yml", {"name": "acme", "url": URL, "token_file": "t", "timeout": "soon"})
    assert main(["--config.file", str(tmp_path / "c.yml"), *ANY_PORT]) == 2
    err = capsys.readouterr().err
    assert "acme.yml: timeout:" in err and "Traceback" not in err


def test_a_reload_sees_added_and_removed_files_and_keeps_unchanged_targets(sim, tmp_path, served):
    token_file(tmp_path / "tok", sim.issue_token(issued_at=time.time()))
    write(tmp_path / "c.yml", {"target_files": ["t.d/*.yml"]})
    write(tmp_path / "t.d" / "acme.yml", {"name": "acme", "url": sim.url, "token_file": "../tok"})
    s = served(tmp_path / "c.yml", min_interval=3600)
    assert value(samples(s.get("/probe", params={"target": "acme"}).text), "pingaway_up") == 1
    calls = sim.request_count()
    assert s.get("/probe", params={"target": "globex"}).status_code == 400

    write(tmp_path / "t.d" / "globex.yml", {"name": "globex", "url": sim.url, "token_file": "../tok"})
    ok, message = s.reloader.reload()
    assert ok, message
    assert value(samples(s.get("/probe", params={"target": "globex"}).text), "pingaway_up") == 1
    # acme did not change: its min-interval cache answers, with no new upstream call
    acme = samples(s.get("/probe", params={"target": "acme"}).text)
    assert value(acme, "pingaway_scrape_cached") == 1
    assert sim.request_count() == calls + 1  # globex's call only

    (tmp_path / "t.d" / "acme.yml").unlink()
    assert s.reloader.reload()[0]
    assert s.get("/probe", params={"target": "acme"}).status_code == 400
    assert [g["targets"] for g in s.get("/sd").json()] == [["globex"]]


DOC = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")


def test_the_documented_target_file_example_loads(tmp_path):
    blocks = re.findall(r"```yaml\n# /etc/pingaway-exporter/(\S+)\n(.*?)```", DOC, re.S)
    (config,) = [text for name, text in blocks if name == "pingaway.yml" and "target_files" in text]
    (acme,) = [text for name, text in blocks if name == "targets.d/acme.yml"]
    (tmp_path / "targets.d").mkdir()
    (tmp_path / "pingaway.yml").write_text(config)
    (tmp_path / "targets.d" / "acme.yml").write_text(acme)
    (acme,) = load_config(str(tmp_path / "pingaway.yml")).targets
    assert acme.name == "acme" and dict(acme.labels) == {"customer": "Acme AB", "tier": "gold"}


def test_the_documented_limits_are_the_enforced_ones():
    from pingaway_exporter.config import labels, targetfiles, yamlload
    table = DOC.split("**Limits**", 1)[1].split("\n\n", 2)[1]
    assert yamlload.MAX_CONFIG_BYTES == 1 << 20 and "at most 1 MiB" in table
    assert f"{targetfiles.MAX_TARGET_FILES:,} in all" in table
    assert f"{targetfiles.MAX_TARGETS:,} in all" in table
    assert f"at most {labels.MAX_LABELS};" in table and f"at most {labels.MAX_LABEL_VALUE:,} characters" in table
    assert all(f"`{name}`" in table for name in labels.RESERVED_LABELS)
