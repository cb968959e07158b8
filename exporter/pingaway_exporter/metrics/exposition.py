"""Fast exposition for families with tens of thousands of series.

prometheus_client builds a ``Sample`` namedtuple and a label dict for every
series and escapes every label value on output: about 6 µs a series
(prometheus-client 0.26, Python 3.11; 4 µs of it to encode), which is over a
second at 50,000 extensions × the six per-extension families. ``RowGauge``
instead keeps each series as a pre-rendered label string (the
``extension``/``name`` part is escaped once per extension and shared by
every per-extension family) and a value, and ``render`` writes it with one
string format: about 0.5–0.7 µs a line (py-spy, bench sizes).
The small families (gauges, counters and infos of plain samples: all of
the exporter's own and the process collectors') are written by ``_encode``,
the same few string formats as prometheus_client's encoders: their general
path (validating and escaping every name, a format call per label) cost
about 5 µs a sample, over a millisecond per scrape of a 50-user domain,
more than the rest of its render. ``Format`` turns that fast path on only
after checking, when it is made, that it writes a probe family byte for
byte as the library does in that format and escaping; anything else (an
exemplar, a timestamp, a histogram, a name outside the legacy character
set) goes to the library's encoder, family by family, so the output stays
exactly what the library would write.
``RowGauge.samples`` still materialises ordinary samples on demand, so any
other consumer of the collector keeps working.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from pingaway_exporter.metrics.catalogue import GAUGE, family
from pingaway_exporter.metrics.families import SUFFIX, SmallFamily

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def escape(value: str) -> str:
    """Escape a label value; most values need nothing, and pay only a scan."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.translate(_ESCAPES)
    return value


class RowGauge(Metric):
    """A gauge family whose series are produced on demand from records.

    ``lines(start, stop)`` renders series ``start:stop`` as exposition
    bytes; the collector builds it with ``joined_rows`` from label strings
    it escaped and encoded once per record and shares between families.
    ``rows()`` yields ``(record, value)`` and ``label_values(record)`` the
    plain label values, used only when something other than ``render`` asks
    for ``samples``. Nothing per series is stored between the collector and
    the output.
    """

    def __init__(self, name: str, documentation: str, label_names: Iterable[str], count: int,
                 lines: Callable[[int, int], bytes], rows: Callable[[], Iterator[tuple[Any, float]]],
                 label_values: Callable[[Any], tuple[str, ...]]) -> None:
        self.name = name
        self.documentation = documentation
        self.unit = ""
        self.type = "gauge"
        self.label_names = tuple(label_names)
        self.count = count
        self.lines = lines
        self.rows = rows
        self.label_values = label_values

    @classmethod
    def of(cls, name: str, count: int, lines: Callable[[int, int], bytes],
           rows: Callable[[], Iterator[tuple[Any, float]]], label_values: Callable[[Any], tuple[str, ...]],
           optional: Iterable[str] = ()) -> RowGauge:
        """The family ``name`` as declared in the catalogue (help, label names; ``optional`` labels added)."""
        spec = family(name)
        if spec.type != GAUGE:
            raise TypeError(f"{name} is declared a {spec.type}; a RowGauge is a gauge")
        return cls(spec.name, spec.help, spec.label_names(optional), count, lines, rows, label_values)

    @property
    def samples(self) -> list[Sample]:
        names, values_of = self.label_names, self.label_values
        return [Sample(self.name, dict(zip(names, values_of(rec), strict=True)), float(value), None, None)
                for rec, value in self.rows()]

    @samples.setter
    def samples(self, _value: object) -> None:  # Metric.__init__ would assign; the records are the truth here
        pass

    def write(self, sink: Callable[[bytes], Any], batch: int = 4096) -> None:
        for start in range(0, self.count, batch):
            sink(self.lines(start, min(self.count, start + batch)))


def joined_rows(prefix: bytes, labels: Sequence[bytes], ends: Sequence[bytes]) -> bytes:
    """``prefix + labels[i] + ends[i]`` for each i, as one bytes object, built without bytecode per line:
    the three are interleaved by slice assignment into one list and joined. A family's lines differ only in
    their labels (escaped and encoded once per record, shared by every family) and their ends (the value
    and newline, a few distinct ones, each made once by ``Ends``). Against an f-string per line, a join and
    an encode of the text (names hold Swedish letters, so the encode is not a copy), this writes a
    1,000-line family in about a quarter of the time (43 against 184 us, Python 3.11)."""
    out = [prefix] * (3 * len(labels))
    out[1::3] = labels
    out[2::3] = ends
    return b"".join(out)


class Ends(dict):  # type: ignore[type-arg]
    """Line ends by value (``} 1\\n``), each made by ``make`` and encoded on first use."""

    def __init__(self, make: Callable[[Any], str]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, value: Any) -> bytes:
        end: bytes = self.make(value).encode("utf-8")
        self[value] = end
        return end


class _One:
    """A registry-shaped wrapper so prometheus_client can encode a single family."""

    __slots__ = ("metric",)

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> list[Metric]:
        return [self.metric]


def _header(metric: RowGauge, openmetrics: bool) -> str:
    doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
    if openmetrics:
        doc = doc.replace('"', r"\"")
    return f"# HELP {metric.name} {doc}\n# TYPE {metric.name} gauge\n"


# The legacy character sets: names in them are written as they are by every escaping but "dots".
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# type -> (the samples' suffix, the text format's name suffix and TYPE)
_TYPES = {"gauge": ("", "", "gauge"), "counter": ("_total", "_total", "counter"),
          "info": ("_info", "_info", "gauge"), "unknown": ("", "", "untyped")}
_SMALL = 1e6  # below it (and above -_HUGE) a float's repr is what floatToGoString writes
_HUGE = 1e300
_go_string: Callable[[float], str] = floatToGoString  # the library's number format (untyped there)
_GOOD_LABELS: set[str] = set()  # label names already found in the legacy set


@lru_cache(maxsize=1024)
def _legacy(name: str, label: bool) -> bool:
    return (_LABEL_NAME if label else _METRIC_NAME).fullmatch(name) is not None


@lru_cache(maxsize=1024)
def _head(name: str, mtype: str, doc: str, unit: str, openmetrics: bool) -> str | None:
    """A family's HELP, TYPE (and UNIT) lines, or None when the family's name needs the library."""
    if not _legacy(name, False):
        return None
    if openmetrics:
        doc = doc.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
        unit_line = f"# UNIT {name} {unit}\n" if unit else ""
        return f"# HELP {name} {doc}\n# TYPE {name} {mtype}\n{unit_line}"
    doc = doc.replace("\\", r"\\").replace("\n", r"\n")
    shown = name + _TYPES[mtype][1]
    return f"# HELP {shown} {doc}\n# TYPE {shown} {_TYPES[mtype][2]}\n"


def _encode(metric: Metric, openmetrics: bool) -> str | None:
    """``metric`` as the library's encoder writes it (without OpenMetrics' ``# EOF``), or None when it is
    not a plain family: another type, a sample with a timestamp or an exemplar, an unexpected sample name
    (``_created``), or a name outside the legacy character set. The caller then asks the library."""
    kind = _TYPES.get(metric.type)
    if kind is None:
        return None
    head = _head(metric.name, metric.type, metric.documentation, metric.unit, openmetrics)
    if head is None:
        return None
    name = metric.name + kind[0]
    out = [head]
    add = out.append
    good = _GOOD_LABELS
    for s in metric.samples:
        # native_histogram: a Sample field since prometheus-client 0.21; 0.20's samples have none
        if s.name != name or s.timestamp is not None or s.exemplar is not None \
                or getattr(s, "native_histogram", None) is not None:
            return None
        v = float(s.value)
        number = repr(v) if -_HUGE < v < _SMALL else _go_string(v)
        labels = s.labels
        if not labels:
            add(f"{name} {number}\n")
            continue
        pairs = []
        for k, raw in (labels.items() if len(labels) == 1 else sorted(labels.items())):
            if k not in good:
                if not _legacy(k, True):
                    return None
                if len(good) < 1024:
                    good.add(k)
            # escape(), inlined: a call per label counts here
            value = raw.translate(_ESCAPES) if "\\" in raw or '"' in raw or "\n" in raw else raw
            pairs.append(f'{k}="{value}"')
        add(f"{name}{{{','.join(pairs)}}} {number}\n")
    return "".join(out)


@lru_cache(maxsize=1024)
def _label_plan(label_names: tuple[str, ...]) -> tuple[tuple[int, str], ...] | None:
    """``(index, 'name="')`` for each label in the order the library writes them (sorted by name), or None
    when a name is outside the legacy set (then the library writes the family)."""
    if not all(_legacy(k, True) for k in label_names):
        return None
    return tuple((i, f'{k}="') for i, k in sorted(enumerate(label_names), key=lambda pair: pair[1]))


def _encode_small(metric: SmallFamily, openmetrics: bool) -> str | None:
    """A ``SmallFamily`` as the library's encoder writes it, straight from its rows; None: ask the library."""
    head = _head(metric.name, metric.type, metric.documentation, metric.unit, openmetrics)
    plan = _label_plan(metric.label_names)
    if head is None or plan is None:
        return None
    name = metric.name + SUFFIX[metric.type]
    out = [head]
    write = _ROWS.get(len(plan), _rows)
    write(name, plan, metric.rows, out.append)
    return "".join(out)


Rows = list[tuple[tuple[str, ...], float]]
Plan = tuple[tuple[int, str], ...]


def _rows(name: str, plan: Plan, rows: Rows, add: Callable[[str], object]) -> None:
    """Rows of any number of labels (the label order worked out once, in ``plan``)."""
    for values, v in rows:
        number = repr(v) if -_HUGE < v < _SMALL else _go_string(v)
        if not plan:
            add(f"{name} {number}\n")
            continue
        pairs = ",".join([f'{k}{escape(values[i])}"' for i, k in plan])
        add(f"{name}{{{pairs}}} {number}\n")


def _rows_one(name: str, plan: Plan, rows: Rows, add: Callable[[str], object]) -> None:
    """Rows of one label (most small families): no join and no list per row, the escape inlined."""
    (i, k), = plan
    for values, v in rows:
        number = repr(v) if -_HUGE < v < _SMALL else _go_string(v)
        value = values[i]
        if "\\" in value or '"' in value or "\n" in value:
            value = value.translate(_ESCAPES)
        add(f'{name}{{{k}{value}"}} {number}\n')


def _rows_two(name: str, plan: Plan, rows: Rows, add: Callable[[str], object]) -> None:
    """Rows of two labels (the group families: the group and a state, line or window), as ``_rows_one``."""
    (i, k), (j, m) = plan
    for values, v in rows:
        number = repr(v) if -_HUGE < v < _SMALL else _go_string(v)
        first, second = values[i], values[j]
        if "\\" in first or '"' in first or "\n" in first:
            first = first.translate(_ESCAPES)
        if "\\" in second or '"' in second or "\n" in second:
            second = second.translate(_ESCAPES)
        add(f'{name}{{{k}{first}",{m}{second}"}} {number}\n')


_ROWS = {1: _rows_one, 2: _rows_two}


def _probe_families() -> list[Metric]:
    """Families with every feature the fast path writes: each type, labels to sort, values to escape, a unit,
    numbers repr and floatToGoString write differently."""
    errors = Metric("probe_pingaway_errors", 'Help with a \\ backslash, a "quote" and a\nnewline.', "counter")
    for i, (value, number) in enumerate([("plain", 0.0), ('q"uo\\te\n', 2.5), ("växel", 1e21), ("", -3.0)]):
        errors.add_sample("probe_pingaway_errors_total", {"z_label": value, "a_label": str(i)}, number)
    size = Metric("probe_pingaway_size", "A gauge with a unit.", "gauge", "bytes")
    size.add_sample("probe_pingaway_size_bytes", {}, 1234567.0)
    size.add_sample("probe_pingaway_size_bytes", {}, float("nan"))
    info = Metric("probe_pingaway_build", "An info family.", "info")
    info.add_sample("probe_pingaway_build_info", {"version": "1.2.3"}, 1.0)
    untyped = Metric("probe_pingaway_other", "", "unknown")
    untyped.add_sample("probe_pingaway_other", {}, 1e-7)
    small = SmallFamily("probe_pingaway_small", 'Help with a \\ backslash, a "quote" and a\nnewline.', "counter",
                        ("z_label", "a_label", "m_label"))
    for i, (text, number) in enumerate([("plain", 0.0), ('q"uo\\te\n', 2.5), ("växel", 1e21), ("", -3.0)]):
        small.add_metric([text, str(i), text[::-1]], number)
    one = SmallFamily("probe_pingaway_one", "One label.", "gauge", ("only",))
    for text, number in [("plain", 1.0), ('q"uo\\te\n', -2.5), ("växel", 1e21)]:
        one.add_metric([text], number)
    two = SmallFamily("probe_pingaway_two", "Two labels, to sort.", "gauge", ("z_group", "a_state"))
    for text, number in [("plain", 1.0), ('q"uo\\te\n', -2.5), ("växel", 1e21)]:
        two.add_metric([text, text[::-1]], number)
    plain = SmallFamily("probe_pingaway_plain", "A gauge.", "gauge", ())
    for number in (1234567.0, float("nan"), float("inf"), -1e-9):
        plain.add_metric([], number)
    return [errors, size, info, untyped, small, one, two, plain]


class Format:
    """What the client negotiated: the encoder for ordinary families and the content type; ``fast`` when
    ``_encode`` writes what that encoder does (checked on probe families, once per content type)."""

    def __init__(self, accept_header: str) -> None:
        self.encoder, content_type = choose_encoder(accept_header or "")
        self.content_type = content_type or CONTENT_TYPE_LATEST
        self.openmetrics = self.content_type.startswith("application/openmetrics-text")
        self.fast = _fast_ok(self.encoder, self.content_type, self.openmetrics)

    @classmethod
    def of(cls, accept_header: str) -> Format:
        """The same as ``Format(accept_header)``, made once per distinct (short) value."""
        if len(accept_header) > 256:
            return cls(accept_header)
        return _format_of(accept_header)

    def encode(self, metric: Metric) -> bytes:
        """One ordinary family, as ``encoder`` writes it (OpenMetrics' ``# EOF`` left out)."""
        if self.fast:
            text = (_encode_small(metric, self.openmetrics) if isinstance(metric, SmallFamily)
                    else _encode(metric, self.openmetrics))
            if text is not None:
                return text.encode("utf-8")
        chunk = self.encoder(_One(metric))
        if self.openmetrics and chunk.endswith(b"# EOF\n"):
            chunk = chunk[:-6]
        return chunk


@lru_cache(maxsize=64)
def _format_of(accept_header: str) -> Format:
    return Format(accept_header)


_FAST: dict[str, bool] = {}  # content type (it names the encoder: format, version, escaping) -> _encode agrees


def _fast_ok(encoder: Callable[[Any], bytes], content_type: str, openmetrics: bool) -> bool:
    """Whether ``_encode`` writes the probe families byte for byte as ``encoder`` does; checked once per
    content type (a few are kept; past that each new one is checked again)."""
    known = _FAST.get(content_type)
    if known is None:
        known = True
        for probe in _probe_families():
            theirs = encoder(_One(probe))
            if openmetrics and theirs.endswith(b"# EOF\n"):
                theirs = theirs[:-6]
            ours = _encode_small(probe, openmetrics) if isinstance(probe, SmallFamily) else _encode(probe, openmetrics)
            if ours is None or ours.encode("utf-8") != theirs:
                known = False
                break
        if len(_FAST) < 64:
            _FAST[content_type] = known
    return known


_PLAIN: dict[tuple[str, Any], tuple[tuple[str, str], ...] | None] = {}  # (content type, key) -> heads and names


def plain_lines(fmt: Format, key: Any, families: Callable[[], Iterable[Metric]],
                values: Sequence[float | None]) -> bytes | None:
    """Families of at most one unlabelled sample each, written as ``fmt`` writes them, with ``values`` (None: no
    sample): their HELP and TYPE lines made once per content type and ``key`` from ``families()`` (the same
    families, empty), then one line a value. For the few families a cached answer renders per scrape, where a
    family object and its encode cost more than the line. None when ``_encode`` is not what the format's
    encoder writes, or a family is not a plain one: then the caller renders the families."""
    if not fmt.fast:
        return None
    slot = (fmt.content_type, key)
    plan = _PLAIN.get(slot, ())
    if plan == ():
        plan = _plain_plan(families(), fmt.openmetrics)
        if len(_PLAIN) < 64:
            _PLAIN[slot] = plan
    if plan is None or len(plan) != len(values):
        return None
    out = []
    for (head, name), v in zip(plan, values, strict=True):
        out.append(head)
        if v is not None:
            out.append(name + (repr(v) if -_HUGE < v < _SMALL else _go_string(v)) + "\n")
    return "".join(out).encode("utf-8")


def _plain_plan(families: Iterable[Metric], openmetrics: bool) -> tuple[tuple[str, str], ...] | None:
    """Each family's HELP and TYPE lines and its sample's name and a space; None when one is not plain."""
    plan = []
    for f in families:
        head = _head(f.name, f.type, f.documentation, f.unit, openmetrics) if f.type in _TYPES else None
        if head is None:
            return None
        plan.append((head, f.name + _TYPES[f.type][0] + " "))
    return tuple(plan)


def render(registry: Collector, fmt: Format, sink: Callable[[bytes], Any]) -> None:
    """Encode the registry's families into ``sink``, a few hundred KB at a time at most."""
    render_families(registry.collect(), fmt, sink)


def render_families(metrics: Iterable[Metric], fmt: Format, sink: Callable[[bytes], Any], eof: bool = True) -> None:
    """Encode ``metrics`` into ``sink``; ``eof=False`` leaves OpenMetrics' ``# EOF`` out, for an answer
    rendered in runs (``web.response``): only the last run ends it."""
    end = b"# EOF\n"
    for metric in metrics:
        if isinstance(metric, RowGauge):
            sink(_header(metric, fmt.openmetrics).encode("utf-8"))
            metric.write(sink)
        else:
            sink(fmt.encode(metric))
    if fmt.openmetrics and eof:
        sink(end)
