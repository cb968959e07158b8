"""The pinned instants the tests judge time-dependent answers at."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

STOCKHOLM = ZoneInfo("Europe/Stockholm")
# A Wednesday mid-morning: the office is open and the phones are busy.
WEDNESDAY_1015 = datetime(2026, 11, 25, 10, 15, 7, tzinfo=STOCKHOLM).timestamp()
