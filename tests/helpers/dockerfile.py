"""A small Dockerfile parser and the .dockerignore rule: enough for the image checks, not a full parser.

``parse_dockerfile`` splits the Dockerfile into instructions, ``split_stages`` groups them by FROM,
``healthcheck_argv`` reads the final stage's HEALTHCHECK probe, and ``dockerignore_patterns``/``ignored``
tell whether a path stays out of the build context.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    lineno: int
    keyword: str  # upper-cased
    args: str  # the rest, continuation lines joined with single spaces


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions.

    Like Docker's own parser: a line whose first non-blank character is ``#``
    is a comment (also in the middle of a continued instruction, and a
    trailing backslash on it continues nothing); a backslash at the end of a
    line continues the instruction; blank lines inside a continuation are
    skipped. Only the default escape character is supported.
    """
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if re.match(r"#\s*escape\s*=", line, re.IGNORECASE):
            raise ValueError("the escape parser directive is not supported by this parser")
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            continue  # between instructions, or an (ignored) empty continuation line
        if not pending:
            start = lineno
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(part for part in pending if part)
        keyword, _, args = joined.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        pending = []
    if pending:
        raise ValueError(f"line {start}: instruction ends in a continuation backslash at end of file")
    return instructions


def split_stages(instructions: list[Instruction]) -> list[Stage]:
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]  # drop --platform=...
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(ins)
        elif ins.keyword != "ARG":  # only ARG may come before the first FROM
            raise ValueError(f"line {ins.lineno}: {ins.keyword} before the first FROM")
    return stages


def strip_flags(args: str) -> str:
    """Drop leading ``--flag=value`` options (RUN --mount=..., COPY --from=...)."""
    words = args.split(" ")
    while words and words[0].startswith("--"):
        words.pop(0)
    return " ".join(words)


def variables(ins: Instruction) -> list[tuple[str, str | None]]:
    """The (name, value) pairs an ENV or ARG sets; value None for a bare ARG."""
    words = shlex.split(ins.args)
    if not words:
        return []
    if ins.keyword == "ENV" and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]  # legacy form: ENV NAME value
    pairs = []
    for word in words:
        name, eq, value = word.partition("=")
        pairs.append((name, value if eq else None))
    return pairs


def healthcheck_argv(final: Stage) -> list[str]:
    args = strip_flags(final.last("HEALTHCHECK").args)
    keyword, _, rest = args.partition(" ")
    assert keyword.upper() == "CMD"
    argv = json.loads(rest)
    assert argv[0] == "python", "the probe runs with the image's python"
    return argv


def dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def ignored(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """Roughly Docker's rule: the last matching pattern wins, and a pattern that
    matches a directory excludes what is below it. fnmatch lets ``*`` cross
    ``/``, so this errs towards 'ignored': fine for checking what must stay in.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, pattern in patterns:
        alternatives = {pattern, pattern[3:]} if pattern.startswith("**/") else {pattern}
        if any(fnmatch.fnmatchcase(p, alt) for p in prefixes for alt in alternatives):
            result = not negated
    return result
