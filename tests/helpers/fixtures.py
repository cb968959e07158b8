"""A hand-written payload whose every metric value is known in advance."""

from datetime import datetime
from zoneinfo import ZoneInfo

STOCKHOLM = ZoneInfo("Europe/Stockholm")

PUBLISHED_EXAMPLE = [
    {"extension": "08010203", "name": "Anna Andersson", "email": "anna.andersson@mail.se", "mobile": "0729913232",
     "profile": {"available": True, "name": "Tillgänglig", "until": "0000-00-00 00:00:00", "message": None},
     "calls": [{"callerid": "0701231234", "direction": "in", "linestatus": "up"}],
     "keyWords": ["support", "stockholm"]},
    {"extension": "08040506", "name": "Bengt Bengtsson", "email": "bengt.bengtsson@mail.se", "mobile": "0733313232",
     "profile": {"available": False, "name": "Semester", "until": "2015-03-14 09:26:53",
                 "message": "Svarar på mail en gång i veckan"},
     "calls": [], "keyWords": ["business", "malmö"]},
    {"extension": "08040506", "name": "Konferensrum A", "email": "", "mobile": "",
     "profile": None, "calls": [], "keyWords": []},
]

EXTRA = [
    # Flat shape, availability as the string "1", a ringing inbound call.
    {"extension": "08070809", "name": "Åsa Öberg", "email": "asa@mail.se", "mobile": "",
     "profile": "Tillgänglig", "available": "1", "until": "0000-00-00 00:00:00", "message": None,
     "calls": [{"callerid": "0700000001", "direction": "in", "linestatus": "ringing"}], "keyWords": ["växel"]},
    # Flat shape, availability 0, calls null, an end time in summer (CEST).
    {"extension": "08070810", "name": "Örjan \"Ögge\" Ängström", "email": "", "mobile": "",
     "profile": "Lunch", "available": 0, "until": "2026-07-01 13:00:00", "calls": None, "keyWords": ["växel"]},
    # A backslash in the name; available with an outbound line that is still down (dialling).
    {"extension": "08070811", "name": "Back\\slash Björk", "email": "", "mobile": "",
     "profile": {"available": 1, "name": "Tillgänglig", "until": "0000-00-00 00:00:00", "message": None},
     "calls": [{"callerid": "0700000002", "direction": "out", "linestatus": "down"}], "keyWords": ["sales"]},
    # The same number and name twice: must not become duplicate series.
    {"extension": "08070812", "name": "Klara Karlsson", "email": "", "mobile": "",
     "profile": {"available": True, "name": "Tillgänglig", "until": "0000-00-00 00:00:00", "message": None},
     "calls": [{"callerid": "1", "direction": "sideways", "linestatus": "hold"},
               {"callerid": "2", "direction": "in", "linestatus": "up"}], "keyWords": ["support"]},
    {"extension": "08070812", "name": "Klara Karlsson", "email": "", "mobile": "",
     "profile": {"available": True, "name": "Tillgänglig", "until": "0000-00-00 00:00:00", "message": None},
     "calls": [], "keyWords": ["support"]},
    # Unusable records: skipped and counted, never fatal.
    "not an object",
    {"name": "no extension number"},
    {"extension": "08070813", "name": "Bad calls", "calls": "busy"},
]

PAYLOAD = PUBLISHED_EXAMPLE + EXTRA


def ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=STOCKHOLM).timestamp()


# What the exporter must report for PAYLOAD.
EXPECTED = {
    "pingaway_users": 8,  # 11 records, 3 unusable
    "pingaway_users_available": 5,  # Anna, Åsa, Back\slash, Klara x2
    "pingaway_users_on_call": 2,  # Anna (up), first Klara (up)
    "pingaway_users_ready": 2,  # Back\slash (line down only), second Klara
    "pingaway_records_skipped": 3,
    "pingaway_extension_duplicates": 1,
}
EXPECTED_CALLS = {"in": 3, "out": 1, "unknown": 1}
EXPECTED_LINES = {"up": 2, "down": 1, "ringing": 1, "other": 1}
EXPECTED_PROFILES = {"Tillgänglig": 5, "Semester": 1, "Lunch": 1, "none": 1}
