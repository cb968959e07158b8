"""payload.Parser's reuse of unchanged records (upstream.reuse): the answer is the one a fresh parse gives.

Each case parses a sequence of bodies with one parser that reuses and compares every result with a parser
that does not (``reuse=False``), record for record, skipped and problems included. What reuse saves is seen
through the results alone: an unchanged record is the very object the parse before returned.
"""

from __future__ import annotations

import gc
import json
import random
from itertools import pairwise

import msgspec
import pytest

from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.upstream.deadline import Deadline
from pingaway_exporter.upstream.failures import TIMEOUT, TOO_MANY_KEYWORD_LISTS
from pingaway_exporter.upstream.payload import LOW_REUSE_PAUSE, PIECEWISE_FROM, Parser, ParseStopped
from pingaway_exporter.upstream.reuse import Budget
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.fixtures import PAYLOAD
from tests.helpers.metrics_util import samples

pytestmark = pytest.mark.unit

# The fixture's records the strict decoder takes (a record it refuses sends the whole body down the tolerant
# path, which reuse never serves), including those skipped or noted while normalising.
STRICT_OK = [r for r in PAYLOAD if isinstance(r, dict) and not isinstance(r.get("calls"), str)]


def people(n: int, seed: int = 0) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        record = dict(STRICT_OK[i % len(STRICT_OK)])
        if record.get("extension"):
            record["extension"] = f"{record['extension']}-{i}"
        record["keyWords"] = [rnd.choice(["support", "sales", "växel", "malmö"])]
        out.append(record)
    return out


def body_of(records: list) -> bytes:
    return json.dumps(records, ensure_ascii=False).encode()


def same(result, reference) -> None:
    assert [msgspec.structs.astuple(e) for e in result.extensions] == \
        [msgspec.structs.astuple(e) for e in reference.extensions]
    assert (result.skipped, result.problems) == (reference.skipped, reference.problems)


def test_unchanged_records_are_the_same_objects_and_the_answer_the_same():
    parser = Parser()
    records = people(200)
    first = parser.parse_body(body_of(records))
    changed = [dict(r) for r in records]
    changed[5]["calls"] = [{"direction": "out", "linestatus": "up"}]
    changed[6]["name"] = "Someone Else"
    second = parser.parse_body(body_of(changed))
    same(first, Parser(reuse=False).parse_body(body_of(records)))
    same(second, Parser(reuse=False).parse_body(body_of(changed)))
    # records without an extension are skipped, so index by extension number
    before = {e.extension: e for e in first.extensions}
    after = {e.extension: e for e in second.extensions}
    moved = {changed[5]["extension"], changed[6]["extension"]}
    assert all(after[k] is before[k] for k in after if k not in moved)
    assert all(after[k] is not before[k] for k in moved)


@pytest.mark.parametrize("seed", range(6))
def test_any_sequence_of_edits_parses_as_a_fresh_parser_does(seed):
    """Records changed, dropped, added, duplicated and reordered between scrapes, both shapes, bad records."""
    rnd = random.Random(seed)
    parser = Parser()
    records = people(120, seed)
    for _ in range(12):
        for _ in range(rnd.randint(0, 15)):
            i = rnd.randrange(len(records))
            what = rnd.choice(["call", "profile", "drop", "add", "dup", "bad", "swap"])
            record = dict(records[i])
            if what == "call":
                record["calls"] = [{"direction": rnd.choice(["in", "out", "up?"]),
                                    "linestatus": rnd.choice(["up", "ringing", "down", "hold"])}]
                records[i] = record
            elif what == "profile":
                record["profile"] = {"available": rnd.choice([True, False, "1", 0, None]),
                                     "name": rnd.choice(["Lunch", "Möte", ""]),
                                     "until": rnd.choice(["0000-00-00 00:00:00", "2026-12-07 13:00:00", "junk"])}
                records[i] = record
            elif what == "drop":
                del records[i]
            elif what == "add":
                records.insert(i, {"extension": f"new-{rnd.random()}", "name": "New", "keyWords": ["sales"]})
            elif what == "dup":
                records.insert(i, records[i])
            elif what == "bad":
                records.insert(i, {"name": "no extension"})
            else:
                j = rnd.randrange(len(records))
                records[i], records[j] = records[j], records[i]
        same(parser.parse_body(body_of(records)), Parser(reuse=False).parse_body(body_of(records)))


def test_a_body_the_strict_decoder_refuses_still_goes_the_tolerant_way():
    parser = Parser()
    records = people(30)
    parser.parse_body(body_of(records))
    spoiled = [*records, {"extension": "9", "calls": "busy"}, "not an object"]
    result = parser.parse_body(body_of(spoiled))
    same(result, Parser(reuse=False).parse_body(body_of(spoiled)))
    assert result.skipped == Parser(reuse=False).parse_body(body_of(records)).skipped + 2


def test_reused_records_count_towards_the_keyword_list_bound():
    lists = [{"extension": str(i), "keyWords": [f"team-{i}"]} for i in range(8)]
    parser = Parser(max_keyword_lists=10)
    parser.parse_body(body_of(lists))  # 8 lists: within the bound, and kept
    grown = [*lists, *({"extension": f"n{i}", "keyWords": [f"new-{i}"]} for i in range(3))]  # 11 lists
    for p in (parser, Parser(reuse=False, max_keyword_lists=10)):
        with pytest.raises(ParseStopped) as stopped:
            p.parse_body(body_of(grown))
        assert stopped.value.reason == TOO_MANY_KEYWORD_LISTS


def test_a_passed_deadline_stops_the_parse():
    parser = Parser()
    with pytest.raises(ParseStopped) as stopped:
        parser.parse_body(body_of(people(10)), deadline=Deadline(0.0, None, lambda: 1.0))
    assert stopped.value.reason == TIMEOUT


def test_nothing_is_kept_past_the_budget():
    body = body_of(people(50))
    parser = Parser(reuse_budget=Budget(1000))  # far less than 50 records cost
    first = parser.parse_body(body)
    second = parser.parse_body(body)
    assert not set(map(id, first.extensions)) & set(map(id, second.extensions))
    same(second, first)


def test_the_budget_comes_back_when_the_parser_goes_or_parses_a_large_body():
    budget = Budget(64 << 20)
    parser = Parser(reuse_budget=budget)
    parser.parse_body(body_of(people(50)))
    assert budget.held > 50 * 300
    large = body_of(people(8000))
    assert len(large) > PIECEWISE_FROM
    parser.parse_body(large)  # parsed piece by piece; nothing of it is kept
    assert budget.held == 0
    parser.parse_body(body_of(people(50)))
    assert budget.held > 0
    del parser
    gc.collect()
    assert budget.held == 0


def test_when_most_records_change_reuse_pauses_and_then_resumes():
    parser = Parser()
    calm = body_of(people(40, seed=1))
    parser.parse_body(calm)
    # Every record changed: under a quarter reused, so reuse pauses.
    parser.parse_body(body_of([{**r, "name": f"{r.get('name')} (moved)"} for r in people(40, seed=1)]))
    results = [parser.parse_body(calm) for _ in range(LOW_REUSE_PAUSE + 1)]
    ids = [set(map(id, r.extensions)) for r in results]
    # The pause's first LOW_REUSE_PAUSE - 1 parses keep nothing; its last keeps its records for the next one.
    assert all(not (a & b) for a, b in pairwise(ids[:LOW_REUSE_PAUSE]))
    assert ids[LOW_REUSE_PAUSE] == ids[LOW_REUSE_PAUSE - 1]
    for r in results:
        same(r, Parser(reuse=False).parse_body(calm))


def _answer_series(text: str) -> dict:
    """The series of a /metrics answer that come from the upstream answer (not its moment, not the process's)."""
    return {key: v for key, v in samples(text).items()
            if key[0].startswith(("pingaway_extension_", "pingaway_users", "pingaway_group_", "pingaway_calls",
                                  "pingaway_lines", "pingaway_profile_users", "pingaway_records_skipped"))}


def test_a_changing_domain_over_http_is_exposed_as_a_fresh_exporter_exposes_it(sim, exporter_factory):
    """Real parts: the simulator over HTTP, the production wiring. One exporter scrapes a domain whose records
    change between scrapes (and so reuses the unchanged ones); after each scrape a fresh exporter, which has
    nothing to reuse, scrapes the same answer. Every series derived from the answer must be the same."""
    rnd = random.Random(7)
    records = Domain(size=120).extensions(WEDNESDAY_1015)
    long_lived = exporter_factory(sim)
    for _ in range(6):
        for i in rnd.sample(range(len(records)), 12):
            record = dict(records[i])
            record["calls"] = [] if record.get("calls") else [{"direction": "in", "linestatus": "ringing"}]
            records[i] = record
        sim.set_payload(list(records))
        got = long_lived.get()
        assert got.status_code == 200 and "pingaway_up 1.0" in got.text
        assert _answer_series(got.text) == _answer_series(exporter_factory(sim).get().text)
