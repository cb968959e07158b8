"""A believable Pingaway domain whose state is a pure function of time.

About sixty people in teams (support, växel, sales, ...) and two conference
rooms. Over a Stockholm working day people arrive, take short breaks and
lunch, sit in meetings, go home; calls ring, get answered and end, each
person on their own phase, so every state (unknown rooms, away, ready,
ringing, on a call) is there at once and profile ends fall all through the
day. Everything is derived
from a seed and the clock by hashing, so a test that pins the clock gets the
same domain every time, and the demo changes from scrape to scrape.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

FIRST = ["Anna", "Bengt", "Åsa", "Örjan", "Karin", "Lars", "Maja", "Björn", "Ingrid", "Göran", "Sofia",
         "Mikael", "Elin", "Per", "Linnéa", "Håkan", "Emma", "Jörgen", "Sara", "Stefan", "Märta", "Olof",
         "Ebba", "Nils", "Frida", "Östen", "Klara", "Jonas", "Agnes", "Ulf"]
LAST = ["Andersson", "Bengtsson", "Öberg", "Ängström", "Johansson", "Karlsson", "Nilsson", "Eriksson",
        "Larsson", "Olsson", "Persson", "Svensson", "Gustafsson", "Pettersson", "Jönsson", "Åkesson",
        "Lindström", "Sjöberg", "Hägg", "Fält", "Wallén", "Björk", "Strömberg", "Löfgren", "Holmqvist",
        "Sundén", "Ekström", "Forsén", "Blomqvist", "Dahlén", "Nyström"]
TEAMS = [("support", 22, 0.45), ("växel", 12, 0.55), ("sales", 14, 0.30), ("ekonomi", 6, 0.15),
         ("it", 6, 0.20)]
CITIES = ["stockholm", "göteborg", "malmö"]
AVAILABLE = "Tillgänglig"
NO_END = "0000-00-00 00:00:00"


def _rand(*keys: object) -> float:
    """A uniform number in [0, 1) fixed by its keys."""
    digest = hashlib.blake2b("|".join(map(str, keys)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Person:
    index: int
    extension: str
    name: str
    email: str
    mobile: str
    team: str
    city: str
    call_rate: float


@dataclass(frozen=True)
class Room:
    extension: str
    name: str


def _ascii(text: str) -> str:
    return text.lower().translate(str.maketrans("åäöé", "aaoe"))


Presence = tuple[bool, str, str, "str | None"]  # (available, profile name, until, message)


class _Day:
    """One person's day as the presence rules see it: the random keys and the working hours."""

    __slots__ = ("end", "key", "local", "midnight", "start", "week")

    def __init__(self, seed: str, index: int, local: datetime, zone: ZoneInfo) -> None:
        day = local.date()
        self.local = local
        self.key = (seed, index, day.isoformat())
        self.week = (seed, index, day.isocalendar()[1])
        self.midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        self.start = self.midnight + timedelta(minutes=450 + int(_rand(*self.key, "start") * 150))  # 07:30-10:00
        self.end = self.midnight + timedelta(minutes=960 + int(_rand(*self.key, "end") * 90))  # 16:00-17:30


class Domain:
    def __init__(self, size: int = 60, seed: str = "pingaway", timezone: str = "Europe/Stockholm") -> None:
        self.seed = seed
        self.zone = ZoneInfo(timezone)
        self.people: list[Person] = []
        teams = [t for t, n, _ in TEAMS for _ in range(n)]
        rates = {t: r for t, _, r in TEAMS}
        for i in range(size):
            first = FIRST[(i * 7) % len(FIRST)]
            last = LAST[(i * 11 + i // len(FIRST)) % len(LAST)]
            name = f"{first} {last}" if i < len(FIRST) * len(LAST) else f"{first} {last} {i}"
            team = teams[i % len(teams)]
            self.people.append(Person(
                index=i, extension=f"08{10200 + i:06d}",
                name=name, email=f"{_ascii(first)}.{_ascii(last)}{'' if i < 900 else i}@exempel.se",
                mobile=f"07{int(_rand(seed, 'mob', i) * 10**8):08d}", team=team,
                city=CITIES[int(_rand(seed, 'city', i) * len(CITIES))], call_rate=rates[team],
            ))
        # Like the vendor's own example: a room shares its number with a person.
        self.rooms = [Room(self.people[0].extension if self.people else "08000000", "Konferensrum A"),
                      Room("08999901", "Konferensrum B")]

    # -- presence -----------------------------------------------------------

    def _local(self, now: float) -> datetime:
        return datetime.fromtimestamp(now, self.zone)

    def _fmt(self, when: datetime) -> str:
        return when.strftime("%Y-%m-%d %H:%M:%S")

    def presence(self, p: Person, now: float) -> Presence:
        """(available, profile name, until, message) for a person at ``now``."""
        d = _Day(self.seed, p.index, self._local(now), self.zone)
        return (self._away_all_day(d) or self._outside_hours(d) or self._lunch_or_training(d)
                or self._short_break(d) or self._meeting(d) or (True, AVAILABLE, NO_END, None))

    def _away_all_day(self, d: _Day) -> Presence | None:
        """Vacation (6 % of weeks), sick (4 % of days) and weekends."""
        weekday = d.midnight.weekday()
        if _rand(*d.week, "vacation") < 0.06:
            back = d.midnight + timedelta(days=7 - weekday, hours=8)
            return False, "Semester", self._fmt(back), "Svarar på mail en gång i veckan"
        if _rand(*d.key, "sick") < 0.04:
            return False, "Sjuk", self._fmt(d.midnight + timedelta(days=1, hours=8)), None
        if weekday >= 5:
            return False, "Ledig", self._fmt(d.midnight + timedelta(days=7 - weekday, hours=8)), None
        return None

    def _outside_hours(self, d: _Day) -> Presence | None:
        """Before the person's start (07:30-10:00) or after their end (16:00-17:30)."""
        if d.local < d.start:
            return False, "Ledig", self._fmt(d.start), None
        if d.local >= d.end:
            return False, "Ledig", self._fmt(d.start + timedelta(days=1)), None
        return None

    def _lunch_or_training(self, d: _Day) -> Presence | None:
        lunch = d.midnight + timedelta(minutes=660 + int(_rand(*d.key, "lunch") * 90))  # 11:00-12:30
        lunch_end = lunch + timedelta(minutes=40 + int(_rand(*d.key, "lunchlen") * 25))
        if lunch <= d.local < lunch_end:
            return False, "Lunch", self._fmt(lunch_end), f"Tillbaka {lunch_end:%H:%M}"
        if _rand(*d.key, "training") < 0.03:
            return False, "Utbildning", self._fmt(d.end), None
        return None

    def _short_break(self, d: _Day) -> Presence | None:
        """Two a day, 8-15 minutes, at any minute between 09:00 and 15:30."""
        for n in range(2):
            pause = d.midnight + timedelta(minutes=540 + int(_rand(*d.key, "pause", n) * 390))
            pause_end = pause + timedelta(minutes=8 + int(_rand(*d.key, "pauselen", n) * 8))
            if pause <= d.local < pause_end:
                return False, "Paus", self._fmt(pause_end), f"Tillbaka {pause_end:%H:%M}"
        return None

    def _meeting(self, d: _Day) -> Presence | None:
        """Each hour, a chance of a 30- or 45-minute meeting starting on one of its quarters, so people leave
        and come back all through the day, not only on the hour."""
        hour = d.local.replace(minute=0, second=0, microsecond=0)
        for h in (hour - timedelta(hours=1), hour):
            if _rand(*d.key, "meeting", h.hour) < 0.12:
                begin = h + timedelta(minutes=15 * int(_rand(*d.key, "meetq", h.hour) * 4))
                done = begin + timedelta(minutes=30 if _rand(*d.key, "meetlen", h.hour) < 0.6 else 45)
                if begin <= d.local < done:
                    return False, "Möte", self._fmt(done), f"I möte till {done:%H:%M}"
        return None

    def calls(self, p: Person, now: float, available: bool) -> list[dict[str, str]]:
        if not available:
            return []
        # Each person's calls run on their own 90-second grid, shifted by a fixed per-person phase, so
        # at any instant some lines ring, some are up and some are idle (not all ringing at once).
        slot_len = 90
        shifted = now - _rand(self.seed, p.index, "phase") * slot_len
        slot = int(shifted // slot_len)
        into = shifted - slot * slot_len
        r = _rand(self.seed, p.index, "call", slot)
        if r >= p.call_rate:
            return []
        length = 30 + _rand(self.seed, p.index, "len", slot) * 60
        if into > length:
            return []
        d = _rand(self.seed, p.index, "dir", slot)
        direction = "in" if d < 0.62 else "out" if d < 0.95 else "unknown"
        ring = 10 + _rand(self.seed, p.index, "ring", slot) * 25
        if into < ring:  # noqa: SIM108 -- a nested conditional expression reads worse
            status = "ringing" if direction != "out" else "down"
        else:
            status = "up"
        caller = f"07{int(_rand(self.seed, p.index, 'caller', slot) * 10**8):08d}"
        calls = [{"callerid": caller, "direction": direction, "linestatus": status}]
        # Switchboard operators sometimes have a second call waiting.
        if p.team == "växel" and status == "up" and _rand(self.seed, p.index, "wait", slot) < 0.25 and into < ring + 40:
            calls.append({"callerid": f"08{int(_rand(self.seed, p.index, 'w', slot) * 10**6):06d}",
                          "direction": "in", "linestatus": "ringing"})
        return calls

    # -- payloads -------------------------------------------------------------

    def extensions(self, now: float, shape: str = "nested") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for p in self.people:
            available, profile, until, message = self.presence(p, now)
            calls = self.calls(p, now, available)
            record: dict[str, Any] = {"extension": p.extension, "name": p.name, "email": p.email, "mobile": p.mobile}
            if shape == "flat":
                record.update(profile=profile, available=available, until=until, message=message)
            else:
                record["profile"] = {"available": available, "name": profile, "until": until, "message": message}
            record["calls"] = calls
            record["keyWords"] = [p.team, p.city]
            out.append(record)
        out.extend({"extension": room.extension, "name": room.name, "email": "", "mobile": "",
                    "profile": None, "calls": [], "keyWords": []} for room in self.rooms)
        return out
