"""Every ``pingaway_*`` family the exporter exports, declared once: name, type, label names and help.

The collector, the group families, the per-extension fast path and the
exporter's own facts all build their families from here (``new``, or
``family(...)`` for ``RowGauge``), so a family that is not declared cannot be
built, and its help text exists in one place. Tests hold the docs' metric
table and real expositions to this list.

A help text may hold ``{placeholders}`` filled per scrape (``doc(**values)``);
``{limit}`` of ``pingaway_profile_users`` is ``--collector.profile-limit``. Help texts are
otherwise fixed: Prometheus keeps one HELP per family, so a per-scrape fact is a series
(``pingaway_scrape_cached``), never a change of HELP. Labels listed in
``optional`` appear only when an option asks for them (the e-mail of
``pingaway_extension_info``, with ``--collector.extensions.email``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pingaway_exporter.metrics.families import SmallFamily
from pingaway_exporter.scrape.tally import WINDOWS

GAUGE, COUNTER = "gauge", "counter"
NO_PROFILE = "none"  # the profile label value of extensions without a presence profile
_HORIZON = f"{WINDOWS[-1][1] / 3600:g}"


@dataclass(frozen=True)
class Family:
    name: str  # as prometheus_client takes it: a counter's without ``_total``
    type: str  # GAUGE or COUNTER
    labels: tuple[str, ...]  # in the order of the label values the builders pass
    help: str
    optional: tuple[str, ...] = ()  # labels after ``labels`` that only an option adds

    @property
    def exposed(self) -> str:
        """The name in the text format and in the docs: a counter's ``_total`` series."""
        return self.name + "_total" if self.type == COUNTER else self.name

    def label_names(self, optional: Iterable[str] = ()) -> tuple[str, ...]:
        if not optional:
            return self.labels
        extra = tuple(optional)
        unknown = set(extra) - set(self.optional)
        if unknown:
            raise ValueError(f"{self.name} has no optional label {', '.join(sorted(unknown))}")
        return self.labels + tuple(o for o in self.optional if o in extra)

    def doc(self, **values: object) -> str:
        return self.help.format(**values) if values else self.help


def _gauge(name: str, labels: tuple[str, ...], help: str, optional: tuple[str, ...] = ()) -> Family:
    return Family(name, GAUGE, labels, help, optional)


# In the order of the docs' table (and of a scrape's exposition, except that the three families that change from
# scrape to scrape, pingaway_scrape_cached, pingaway_data_age_seconds and pingaway_scrape_duration_seconds, come
# after the reload state).
CATALOGUE: tuple[Family, ...] = (
    # -- the scrape itself ---------------------------------------------------------------------------------
    _gauge("pingaway_up", (), "1 if this scrape got a usable extension list from Pingaway, else 0."),
    _gauge("pingaway_scrape_cached", (), "1 if this scrape was answered from the --pingaway.min-interval cache "
                                         "(no upstream call of its own; see pingaway_data_age_seconds), else 0."),
    _gauge("pingaway_data_age_seconds", (), "Age of the extension list this scrape reports: near 0 when fetched "
                                            "now, larger when served from the --pingaway.min-interval cache."),
    _gauge("pingaway_scrape_duration_seconds", (), "Time spent fetching and parsing the extension list."),
    Family("pingaway_scrape_errors", COUNTER, ("reason",), "Failed scrapes since the exporter started, by reason."),
    _gauge("pingaway_scrape_error", ("reason",), "1 for the reason this scrape failed, 0 for the others."),
    # -- credentials and the build ---------------------------------------------------------------------------
    _gauge("pingaway_token_expiry_timestamp_seconds", (), "The token's exp claim, when it has one (Unix time)."),
    _gauge("pingaway_token_issued_timestamp_seconds", (), "The token's iat claim, when it has one (Unix time)."),
    _gauge("pingaway_auth_info", ("method",), "How the exporter authenticates to Pingaway: bearer token or login "
                                              "session; always 1."),
    _gauge("pingaway_exporter_build_info", ("version", "python_version"),
           "Version of pingaway-exporter and of the Python running it."),
    # -- the domain's totals -----------------------------------------------------------------------------------
    _gauge("pingaway_users", (), "Extensions in the list, people and shared resources alike."),
    _gauge("pingaway_users_available", (), "Extensions whose presence profile says available."),
    _gauge("pingaway_users_on_call", (), "Extensions with at least one line up."),
    _gauge("pingaway_users_ready", (),
           "Available extensions with no line up or ringing: who could take the next call."),
    _gauge("pingaway_users_state", ("state",), "Extensions by state (unknown, away, ready, ringing, on_call; see "
                                               "pingaway_extension_state); the five sum to pingaway_users."),
    _gauge("pingaway_users_returning", ("within",), "Extensions not available now whose presence profile ends within "
                                                    "the window (15m, 30m, 1h; cumulative: 1h includes 30m)."),
    _gauge("pingaway_calls_active", ("direction",),
           "Ongoing calls (every entry in an extension's calls list), by direction."),
    _gauge("pingaway_lines", ("status",), "Call lines by line status; 'other' appears only for undocumented statuses."),
    _gauge("pingaway_profile_users", ("profile",), "Extensions per presence profile name; at most {limit} names, "
                                                   f"the rest summed as 'other', '{NO_PROFILE}' where there is no "
                                                   "profile."),
    _gauge("pingaway_records_skipped", (), "Records in this scrape's list skipped as unusable."),
    _gauge("pingaway_extension_duplicates", (), "Records whose extension number and name repeat an earlier record; "
                                                "their per-extension series are folded into the first."),
    # -- per extension (metrics/exposition.py's RowGauge) ------------------------------------------------------
    _gauge("pingaway_extension_available", ("extension", "name"),
           "1 if the extension is available, 0 if not; absent when unknown."),
    _gauge("pingaway_extension_calls_active", ("extension", "name"), "Ongoing calls per extension."),
    _gauge("pingaway_extension_state", ("extension", "name"),
           "The person's state: 0 unknown (no profile, no call), 1 away (not available), 2 ready "
           "(available), 3 ringing (a line rings, none is up), 4 on a call (a line is up). "
           "A call beats ringing, ringing beats the profile; lines down or undocumented change nothing."),
    _gauge("pingaway_extension_returning_seconds", ("extension", "name"),
           f"Seconds until the extension's away profile ends, for those back within {_HORIZON} h "
           "(as counted by pingaway_users_returning); absent otherwise."),
    _gauge("pingaway_extension_profile_until_timestamp_seconds", ("extension", "name"),
           "When the extension's current presence profile ends (Unix time); only when it has an end."),
    _gauge("pingaway_extension_info", ("extension", "name", "profile"), "Per-extension metadata; always 1.",
           optional=("email",)),
    # -- staffing groups (metrics/groups.py) -------------------------------------------------------------------
    _gauge("pingaway_group_users", ("group",), "Extensions in the staffing group (matched on keyWords)."),
    _gauge("pingaway_group_users_available", ("group",), "Extensions in the group whose presence says available."),
    _gauge("pingaway_group_users_ready", ("group",),
           "Available extensions in the group with no line up or ringing: who could take the next call."),
    _gauge("pingaway_group_calls_active", ("group", "direction"),
           "Ongoing calls of the group's extensions, by direction."),
    _gauge("pingaway_group_lines", ("group", "status"),
           "Call lines of the group's extensions by status; 'other' only when seen."),
    _gauge("pingaway_group_users_state", ("group", "state"),
           "Extensions in the group by state (unknown, away, ready, ringing, on_call; see "
           "pingaway_extension_state); the five sum to pingaway_group_users."),
    _gauge("pingaway_group_users_returning", ("group", "within"),
           "Extensions in the group not available now whose profile ends within the window (15m, 30m, 1h; "
           "cumulative)."),
    _gauge("pingaway_group_staffing_minimum", ("group",),
           "Configured minimum of available people while the group is open; present on failed scrapes too."),
    _gauge("pingaway_group_open", ("group",),
           "1 while the group's opening hours say open (its zone, holidays, closed dates), else 0; "
           "present on failed scrapes too."),
    # -- the config file ---------------------------------------------------------------------------------------
    _gauge("pingaway_config_last_reload_successful", (), "1 if the last load of the config file succeeded, else 0."),
    _gauge("pingaway_config_last_reload_success_timestamp_seconds", (),
           "When the config file was last loaded successfully (Unix time)."),
    # -- the web-config file (only with --web.config.file) -----------------------------------------------------
    _gauge("pingaway_web_config_last_reload_successful", (),
           "1 if the last load of --web.config.file succeeded, else 0 (the config in force stays); only with "
           "--web.config.file."),
)

FAMILIES: dict[str, Family] = {f.name: f for f in CATALOGUE}


def family(name: str) -> Family:
    """The declared family ``name``; a family that is not declared here cannot be built."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"{name} is not in metrics/catalogue.py; declare it there first") from None


def new(name: str, *, optional: Iterable[str] = (), **help_values: object) -> SmallFamily:
    """An empty family for the declared ``name`` (an ordinary prometheus_client ``Metric`` to any reader);
    add samples with ``add_metric(label_values, value)``."""
    f = family(name)
    return SmallFamily(f.name, f.doc(**help_values), f.type, f.label_names(optional))
