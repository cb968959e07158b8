"""Turn the body of ``GET extensions/`` into typed records.

The vendor has never published its error bodies, so the parser is tolerant
per record and strict per payload: one odd record is skipped and counted,
while a body that is not a JSON list of objects fails the whole scrape.
``records`` holds the schema a record is decoded by and the type it has
afterwards; ``lenient`` the slow path for bodies the strict decoder refuses.

Speed and memory matter at 50,000 extensions. The body is decoded straight
into msgspec structs that keep only the fields the exporter uses (no dicts),
which is about twice as fast as ``json.loads``; the structs are then
normalised in place. A body over ``PIECEWISE_FROM`` bytes is first split
into its records undecoded (views of the body) and decoded a piece at a
time, each piece normalised before the next is decoded: the decoded form of
a record (its own copy of every keyword, profile name and end time) is
about three times its normalised form, and holding all of it at once beside
the body was the exporter's peak memory. Only when the strict decode
rejects the payload does the slower tolerant path run, record by record, to
find out which records are bad. Cyclic GC is paused while the large,
acyclic object graph is built: otherwise it rescans the young objects over
and over and costs more than the decode itself.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

import msgspec

from pingaway_exporter.config.values import DEFAULT_MAX_KEYWORD_LISTS, DEFAULT_MAX_SERIES
from pingaway_exporter.upstream.deadline import Deadline
from pingaway_exporter.upstream.failures import TIMEOUT, TOO_MANY_KEYWORD_LISTS, TOO_MANY_SERIES
from pingaway_exporter.upstream.gc_pause import gc_paused
from pingaway_exporter.upstream.lenient import BadRecord, available, json_type, lenient_json, unusable
from pingaway_exporter.upstream.records import (
    CALLS,
    DIRECTIONS,
    GENERIC,
    LINE_STATUSES,
    NO_END,
    ONE,
    OTHER,
    RAW_LIST,
    RECORD,
    STRICT,
    Call,
    Extension,
    Loose,
    WireCall,
    WireExtension,
    WireProfile,
)
from pingaway_exporter.upstream.reuse import BUDGET, Budget, LastRecords, charge

# Bodies larger than this are decoded PIECE records at a time (see the module docstring); smaller ones at once,
# which is faster (one decoder call) and costs little memory.
PIECEWISE_FROM = 1 << 20
PIECE = 256
# Reuse (upstream.reuse) pauses for LOW_REUSE_PAUSE parses after one that found under 1/LOW_REUSE of its records
# unchanged: splitting a body into records first costs about half a whole decode, saved only when records repeat.
LOW_REUSE = 4
LOW_REUSE_PAUSE = 8

# Each extension record can become up to this many series (the six pingaway_extension_* families); the
# bounds themselves (DEFAULT_MAX_SERIES, DEFAULT_MAX_KEYWORD_LISTS) are explained in config.values.
SERIES_PER_RECORD = 6


class PayloadError(Exception):
    """The body as a whole is unusable. The message says why, in one line."""


class ParseStopped(Exception):
    """The parse stopped at a bound (deadline, series, keyword lists): ``reason`` is one of failures.REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class ParseResult:
    extensions: list[Extension]
    skipped: int = 0
    # One short text per kind of problem seen, for a log line; bounded.
    problems: dict[str, int] = field(default_factory=dict)
    # Values outside the documented sets, by field, in the records this parse decoded: a record reused from the
    # parse before (upstream.reuse) was counted when it was decoded. For a log line once per target.
    drift: dict[str, int] = field(default_factory=dict)

    def note(self, bucket: dict[str, int], text: str) -> None:
        if text in bucket or len(bucket) < 20:
            bucket[text] = bucket.get(text, 0) + 1


class Parser:
    """Reusable parser; holds the time zone ``until`` values are read in."""

    def __init__(self, timezone: str = "Europe/Stockholm", keep_email: bool = False, *,
                 max_series: int = DEFAULT_MAX_SERIES, max_keyword_lists: int = DEFAULT_MAX_KEYWORD_LISTS,
                 reuse: bool = True, reuse_budget: Budget = BUDGET) -> None:
        self.zone = ZoneInfo(timezone)
        self.max_series = max_series
        self.max_keyword_lists = max_keyword_lists
        # One parse at a time (docs/security.md, U2): a parse that outlives its scrape's deadline stops at its next
        # check, and the next scrape's parse waits for it instead of running beside it.
        self._busy = threading.Lock()
        self._deadline: Deadline | None = None
        # E-mail is personal data: not even decoded unless it is exported.
        self.keep_email = keep_email
        self._strict = STRICT[keep_email]
        self._one = ONE[keep_email]
        self._record = RECORD[keep_email]
        self._until_cache: dict[str, float | None] = {}
        # Profile names and keywords repeat across thousands of records: keep one copy of each. Both live for
        # one parse only (emptied after it), so a hostile body's 200,000 distinct words are not kept (U3).
        self._interned: dict[str, str] = {}
        self._word_tuples: dict[tuple[str, ...], tuple[str, ...]] = {}
        # The last small body's records by their text, to reuse the unchanged ones (upstream.reuse); off with
        # ``reuse=False``. After a parse that found few of its records unchanged, the next LOW_REUSE_PAUSE - 1
        # parses decode the body whole (the cheaper way when most records change); the last of the pause keeps
        # its records again, and the parse after it is judged afresh.
        self._last: LastRecords[WireExtension] | None = LastRecords(reuse_budget) if reuse else None
        self._reuse_paused = 0

    def _names(self, text: str) -> str:
        return self._interned.setdefault(text, text)

    def _records(self, n: int) -> None:
        """Refuse a body of ``n`` records when they could make more series than the bound."""
        if n * SERIES_PER_RECORD > self.max_series:
            raise ParseStopped(TOO_MANY_SERIES, f"{n} records could make {n * SERIES_PER_RECORD} series, more "
                                                f"than --pingaway.max-series {self.max_series}")

    def _in_time(self) -> None:
        deadline = self._deadline
        if deadline is not None and deadline.remaining() <= 0:
            raise ParseStopped(TIMEOUT, "the scrape deadline passed while the body was being parsed")

    def parse_body(self, body: bytes | bytearray, content_type: str = "",
                   deadline: Deadline | None = None) -> ParseResult:
        """The records of a body, within ``deadline`` (``ParseStopped`` when it passes or a bound is hit)."""
        head = body[:256].lstrip().lower()
        if head.startswith(b"<") or "html" in content_type.lower():
            raise PayloadError("upstream sent an HTML page, not JSON")
        wait = -1.0 if deadline is None else max(0.0, deadline.remaining())
        if not self._busy.acquire(timeout=wait):
            raise ParseStopped(TIMEOUT, "the previous parse of this target was still stopping at the deadline")
        self._deadline = deadline
        try:
            return self._parse_body(body)
        finally:
            self._interned = {}
            self._word_tuples = {}
            self._deadline = None
            self._busy.release()

    def _parse_body(self, body: bytes | bytearray) -> ParseResult:
        with gc_paused():
            try:
                try:
                    if len(body) > PIECEWISE_FROM:
                        self._forget_last()
                        return self._piecewise(body)
                    if self._last is not None:
                        if self._reuse_paused <= 1:  # at 1, the last paused parse fills what the next reuses
                            return self._reusing(body, self._last)
                        self._reuse_paused -= 1
                    wire = self._strict.decode(body)
                    self._records(len(wire))
                except msgspec.ValidationError:
                    # Valid JSON of an unexpected shape somewhere: find out record by record.
                    return self._tolerant(GENERIC.decode(body))
            except RecursionError:
                raise PayloadError(f"response nests too deeply to be an extension list ({len(body)} bytes)") from None
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec < 0.19: the latter for non-UTF-8
                # msgspec refuses a whole body for one lone surrogate (an invalid \\ud800 escape) or one
                # number out of range. The standard library reads both; the records that hold them are
                # then skipped one by one.
                data = lenient_json(body)
                if data is None:
                    raise PayloadError(f"response is not valid JSON ({len(body)} bytes): {exc}") from None
                return self._tolerant(data)
            return self._checked(self._normalise(wire, ParseResult(extensions=[])), len(wire))

    def _piecewise(self, body: bytes | bytearray) -> ParseResult:
        """A large body, decoded and normalised PIECE records at a time (the strict decode's errors propagate:
        the caller then reads the whole body again by the slower paths, as for a small body)."""
        raws = RAW_LIST.decode(body)
        self._records(len(raws))
        decode = self._one.decode
        result = ParseResult(extensions=[])
        for start in range(0, len(raws), PIECE):
            self._in_time()
            self._normalise([decode(r) for r in raws[start:start + PIECE]], result)
        return self._checked(result, len(raws))

    def _reusing(self, body: bytes | bytearray, last: LastRecords[WireExtension]) -> ParseResult:
        """A small body split into its records undecoded; those whose text the last parse had are its
        records again, the others are decoded and normalised (upstream.reuse). The texts and their lookup are
        made by ``map`` (no bytecode per record); only the records not found are visited one run of them at a
        time. The strict decode's errors propagate, as for the whole body: the caller then reads it by the
        slower paths."""
        raws = RAW_LIST.decode(body)
        self._records(len(raws))
        had = len(last)
        texts = list(map(bytes, raws))
        found = list(map(last.getter(), texts))
        self._in_time()
        result = ParseResult(extensions=[])
        out = cast("list[WireExtension]", result.extensions)  # reused records: normalised already
        if None not in found:
            out += found  # type: ignore[arg-type] # (no None in it)
            if len(found) != had:  # records went (or repeat): keep exactly this body's
                self._keep(last, dict(zip(texts, found, strict=True)), judged=had > 0,  # type: ignore[arg-type]
                           reused=len(found), total=len(found))
            return self._checked(result, len(raws))
        fresh: dict[bytes, WireExtension] = {}  # the usable records this parse decoded, by their text
        decode = self._one.decode
        n = len(found)
        at = 0
        while at < n:
            try:
                start = found.index(None, at)
            except ValueError:
                start = n
            out += found[at:start]  # type: ignore[arg-type] # reused: no None before ``start``
            stop = start
            while stop < n and found[stop] is None:
                stop += 1
            if stop > start:
                self._in_time()
                self._normalise_run([decode(t) for t in texts[start:stop]], texts[start:stop], result, fresh)
            at = stop
        reused = [r for r in found if r is not None]
        # The reused records' keyWords lists count towards this parse's bound with the new ones. (With nothing
        # new they are the last parse's lists, which were within it.)
        for words in {id(w): w for w in [e.keywords for e in reused] if w}.values():
            self._reused_words(words)
        kept = {t: r for t, r in zip(texts, found, strict=True) if r is not None}
        kept.update(fresh)
        self._keep(last, kept, judged=had > 0, reused=len(reused), total=n)
        return self._checked(result, len(raws))

    def _reused_words(self, words: tuple[str, ...]) -> None:
        """A reused record's keyWords tuple counts towards this parse's distinct lists (and is shared)."""
        if words not in self._word_tuples:
            self._count_words()
            self._word_tuples[words] = words

    def _keep(self, last: LastRecords[WireExtension], kept: dict[bytes, WireExtension], *,
              judged: bool, reused: int, total: int) -> None:
        """Keep this parse's records for the next, or pause reuse when few of them were unchanged. A parse
        that had nothing to reuse (the first, or the one ending a pause) is not judged."""
        if not self._reuse_paused and judged and reused * LOW_REUSE < total:
            self._reuse_paused = LOW_REUSE_PAUSE
            last.clear()
            return
        self._reuse_paused = 0
        words = sum([len(e.keywords or ()) for e in kept.values()])
        last.replace(kept, charge(sum(map(len, kept)), len(kept), words))

    def _normalise_run(self, run: list[WireExtension], texts: list[bytes], result: ParseResult,
                       fresh: dict[bytes, WireExtension]) -> None:
        """Normalise records decoded from ``texts`` onto ``result``; the usable ones go in ``fresh`` by their
        text."""
        out = result.extensions
        before = len(out)
        self._normalise(run, result)
        if len(out) - before == len(run):  # none skipped: run[i] is the record appended i-th
            for text, record in zip(texts, run, strict=True):
                fresh.setdefault(text, record)
            return
        appended = {id(e) for e in out[before:]}
        for text, record in zip(texts, run, strict=True):
            if id(record) in appended:
                fresh.setdefault(text, record)

    def _forget_last(self) -> None:
        if self._last is not None:
            self._last.clear()

    def parse(self, data: object) -> ParseResult:
        """Parse already-decoded JSON (the tolerant path)."""
        with self._busy, gc_paused():
            try:
                return self._tolerant(data)
            finally:
                self._interned = {}
                self._word_tuples = {}

    def _tolerant(self, data: object) -> ParseResult:
        if isinstance(data, dict):
            raise PayloadError("response is a JSON object, expected a list of extensions")
        if not isinstance(data, list):
            raise PayloadError(f"response is a JSON {type(data).__name__}, expected a list of extensions")
        self._records(len(data))
        result = ParseResult(extensions=[])
        wire: list[WireExtension] = []
        for i, item in enumerate(data):
            if not i % PIECE:
                self._in_time()
            if not isinstance(item, dict):
                result.skipped += 1
                result.note(result.problems, f"record is a JSON {json_type(item)}, not an object")
                continue
            problem = unusable(item)
            if problem is not None:
                result.skipped += 1
                result.note(result.problems, problem)
                continue
            words = item.get("keyWords")
            if isinstance(words, list) and not all(type(w) is str for w in words):
                item = {**item, "keyWords": [w for w in words if type(w) is str]}  # noqa: PLW2901 -- drop odd keywords only
            try:
                wire.append(msgspec.convert(item, self._record))
            except msgspec.ValidationError as exc:
                result.skipped += 1
                result.note(result.problems, str(exc).replace("$.", "record."))
            except UnicodeEncodeError:  # a bad byte in a key (the values were checked above)
                result.skipped += 1
                result.note(result.problems, "record holds a key that is not valid Unicode (a bad byte)")
        return self._checked(self._normalise(wire, result), len(data))

    @staticmethod
    def _checked(result: ParseResult, total: int) -> ParseResult:
        if total and not result.extensions:
            raise PayloadError(f"none of the {total} records is a usable extension")
        return result

    def _normalise(self, wire: Sequence[WireExtension], result: ParseResult) -> ParseResult:
        # Each record is appended once normalised: from then on it holds an Extension's types.
        out = cast("list[WireExtension]", result.extensions)
        append = out.append
        calls_for = self._calls
        until_of = self._until
        names = self._interned.setdefault  # (``_names``, without a call of its own per record)
        words_of = self._words
        known_words = self._word_tuples.get  # a keyWords list seen before: its shared tuple, without a call
        for w in wire:
            try:
                number = w.extension
                if type(number) is not str:
                    if number is None:
                        raise BadRecord("record has no 'extension'")
                    w.extension = str(number)
                elif not number:
                    raise BadRecord("record has an empty 'extension'")
                profile = w.profile
                avail: Loose
                until: str | int | None
                if type(profile) is WireProfile:  # the published, nested shape
                    avail = profile.available
                    w.profile = names(profile.name, profile.name) if profile.name else None
                    until = profile.until
                else:  # the flat field list: profile is a description string or null
                    avail = w.available
                    # (`type(...) is` leaves the union whole here; isinstance would cost time per record)
                    w.profile = names(profile, profile) if profile else None  # type: ignore[arg-type]
                    until = w.until
                if avail is not True and avail is not False:
                    avail = available(avail)
                w.available = avail
                # Normalised in place: the wire field now holds Unix time, the calls shared Call objects.
                w.until = None if not until or until == NO_END else until_of(until, result)  # type: ignore[assignment]
                calls = w.calls
                w.calls = calls_for(calls, result) if calls else ()  # type: ignore[assignment]
                name = w.name
                if type(name) is not str:
                    w.name = "" if name is None else str(name)
                if w.email is None:
                    w.email = ""
                words = w.keywords
                w.keywords = (known_words(words) or words_of(words)) if words else ()
                append(w)
            except BadRecord as exc:  # noqa: PERF203 -- one bad record is skipped, not the payload
                result.skipped += 1
                result.note(result.problems, str(exc))
        return result

    def _words(self, words: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """One shared tuple per distinct keyword list: less memory, and cheap grouping later."""
        if type(words) is not tuple:
            words = tuple(x for x in words if type(x) is str)
        shared = self._word_tuples.get(words)
        if shared is None:
            self._count_words()
            shared = self._word_tuples.setdefault(words, tuple(self._names(x) for x in words if x))
        return shared

    def _count_words(self) -> None:
        """Before a new distinct keyWords list is kept: refuse it past the bound."""
        if len(self._word_tuples) >= self.max_keyword_lists:
            raise ParseStopped(TOO_MANY_KEYWORD_LISTS, f"more than {self.max_keyword_lists} distinct keyWords "
                                                       "lists (--pingaway.max-keyword-lists)")

    def _calls(self, raw: list[WireCall], result: ParseResult) -> tuple[Call, ...]:
        out = []
        for c in raw:
            call = CALLS.get((c.direction, c.linestatus))
            if call is None:
                direction = c.direction
                if direction not in DIRECTIONS:
                    if direction is not None:
                        result.note(result.drift, "direction")
                    direction = "unknown"
                status = c.linestatus
                if status not in LINE_STATUSES:
                    result.note(result.drift, "linestatus")
                    status = OTHER
                call = CALLS[(direction, status)]
            out.append(call)
        return tuple(out)

    def _until(self, raw: object, result: ParseResult) -> float | None:
        if raw == NO_END:
            return None
        if not isinstance(raw, str):
            result.note(result.drift, "until")
            return None
        cache = self._until_cache
        if raw in cache:
            return cache[raw]
        try:
            local = datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.zone)
            value: float | None = local.timestamp()
        except ValueError:
            result.note(result.drift, "until")
            value = None
        if len(cache) > 10_000:
            cache.clear()
        cache[raw] = value
        return value
