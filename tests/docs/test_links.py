"""The docs hold together: every relative link and #anchor lands, every runbook_url names a heading, and the
README stays a front door (under 250 lines, linking every page in docs/)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *DOCS]
REPO_BLOB = "https://github.com/pingaway-exporter/pingaway-exporter/blob/main/"
README_MAX_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+).*?\1")
# [text](target) and ![alt](target), with an optional "title"; the text may hold `code` but no brackets.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower-case, punctuation dropped, spaces to '-'."""
    text = unicodedata.normalize("NFC", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file, with GitHub's -1, -2 ... for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = github_anchor(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        targets += LINK.findall(CODE_SPAN.sub("", line))
    return targets


def broken(path: Path, target: str) -> str | None:
    """Why a link from path to target does not land, or None when it does (or is not relative)."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
        return None  # http:, https:, mailto: ...: not ours to check
    file_part, _, fragment = target.partition("#")
    dest = (path.parent / unquote(file_part)).resolve() if file_part else path
    if not dest.exists():
        return f"no file {file_part}"
    if ROOT not in dest.parents and dest != ROOT:
        return f"{file_part} is outside the repository"
    if fragment:
        if dest.suffix != ".md":
            return f"#{fragment} on a file that is not Markdown"
        if fragment not in anchors(dest):
            return f"no heading #{fragment} in {dest.relative_to(ROOT)}"
    return None


def test_the_anchor_rule_matches_githubs():
    assert github_anchor("Many domains: `/probe`") == "many-domains-probe"
    assert github_anchor("How a scrape stays inside Prometheus's timeout") == (
        "how-a-scrape-stays-inside-prometheuss-timeout")
    assert github_anchor("Config file: staffing groups and opening hours") == (
        "config-file-staffing-groups-and-opening-hours")
    assert github_anchor("Protecting the exporter's endpoint: `--web.config.file`") == (
        "protecting-the-exporters-endpoint---webconfigfile")
    assert github_anchor("Växel och Ekonomi") == "växel-och-ekonomi"


def test_the_checker_finds_a_broken_link_and_anchor(tmp_path):
    # The checker itself must be able to fail: a missing file, a missing anchor and a good link.
    page = ROOT / "docs" / "metrics.md"
    assert broken(page, "nowhere.md") == "no file nowhere.md"
    assert broken(page, "configuration.md#no-such-heading") == "no heading #no-such-heading in docs/configuration.md"
    assert broken(page, "#why-a-scrape-failed") is None
    assert broken(page, "https://example.net/#anything") is None
    md = tmp_path / "x.md"
    md.write_text("# Title\n\n```sh\n# not a heading\n```\n\n## Title\n", encoding="utf-8")
    assert anchors(md) == {"title", "title-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_lands(page):
    found = links(page)
    problems = [f"{target}: {why}" for target in found if (why := broken(page, target))]
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_the_pages_link_to_each_other():
    # Guards the link check against passing because it found no links at all.
    assert len(links(ROOT / "README.md")) >= 10
    assert all(links(doc) for doc in DOCS)


def test_every_runbook_url_names_an_existing_heading():
    rules = [r for g in yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))["groups"]
             for r in g["rules"]]
    assert rules
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(REPO_BLOB) and "#" in url, (rule["alert"], url)
        target = url[len(REPO_BLOB):]
        assert broken(ROOT / "README.md", target) is None, (rule["alert"], broken(ROOT / "README.md", target))
        assert target.split("#", 1)[1] == github_anchor(rule["alert"]), rule["alert"]


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < README_MAX_LINES
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md") if t.startswith("docs/")}
    assert {d.resolve() for d in DOCS} <= linked, "every page in docs/ is linked from the README"
    assert (ROOT / "docs" / "team-page.png").is_file()


DEPLOY_FILES = sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file() and p.suffix != ".py")
REPO_LINK = re.compile(r"https://github\.com/[^\s\"')]+")


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_in_the_deploy_files_lands(path):
    """The systemd unit's Documentation= pointed at another owner and a missing anchor."""
    for url in REPO_LINK.findall(path.read_text(encoding="utf-8")):
        assert url.startswith(REPO_BLOB), f"{path.name}: {url} is not this repository's"
        file, _, anchor = url[len(REPO_BLOB):].partition("#")
        assert (ROOT / file).is_file(), f"{path.name}: {url}: no {file}"
        if anchor:
            assert anchor in anchors(ROOT / file), f"{path.name}: {url}: no heading #{anchor}"
