"""Why a fetch failed: the fixed set of reasons, ``FetchError``, and transport exceptions mapped onto them.

Every failure the client raises is a ``FetchError`` with one of ``REASONS``
(each becomes a label value on ``pingaway_scrape_errors_total``) and a
one-line detail that is scrubbed of secrets before it is shortened, because
anything in it may have come from upstream. ``transport_errors`` turns what
httpx and the socket raise into such an error; the HTTP statuses are mapped
in ``client``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from pingaway_exporter.config.redact import shorten

# The fixed set of reasons a scrape can fail for. Kept small on purpose:
# each becomes a label value on pingaway_scrape_errors_total.
TIMEOUT = "timeout"
CONNECTION = "connection"
UNAUTHORIZED = "unauthorized"
RATE_LIMITED = "rate_limited"
HTTP_ERROR = "http_error"
INVALID_PAYLOAD = "invalid_payload"
TOKEN_EXPIRED = "token_expired"  # noqa: S105 -- a reason label, not a secret
TOO_MANY_SERIES = "too_many_series"  # the records would make more series than --pingaway.max-series
TOO_MANY_KEYWORD_LISTS = "too_many_keyword_lists"  # more distinct keyWords lists than --pingaway.max-keyword-lists
REASONS = (TIMEOUT, CONNECTION, UNAUTHORIZED, RATE_LIMITED, HTTP_ERROR, INVALID_PAYLOAD, TOKEN_EXPIRED,
           TOO_MANY_SERIES, TOO_MANY_KEYWORD_LISTS)

DETAIL_LIMIT = 300  # characters of a failure's detail, after scrubbing
BAD_LOCATION = "upstream answered a redirect whose Location is not a URL; set --pingaway.url to the final address"


class FetchError(Exception):
    """A failed fetch: a reason from ``REASONS`` and a one-line, secret-free detail."""

    def __init__(self, reason: str, detail: str, status: int | None = None) -> None:
        # Anything here may have come from upstream (a Location, a reason
        # phrase, an exception text): scrubbed of secrets, then shortened.
        detail = shorten(detail, DETAIL_LIMIT)
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status  # the HTTP status behind it, when there was one


def safe_url(url: str) -> str:
    """The URL without any userinfo part, fit for a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=host).geturl()


@contextmanager
def transport_errors(base_url: str, monotonic: Callable[[], float]) -> Iterator[None]:
    """Turn transport failures into a FetchError with a reason and a secret-free detail."""
    started = monotonic()
    try:
        yield
    except FetchError:
        raise
    except httpx.TimeoutException:
        raise FetchError(TIMEOUT, f"no complete answer within {monotonic() - started:.1f}s "
                                  "(the scrape deadline)") from None
    except httpx.DecodingError:
        raise FetchError(INVALID_PAYLOAD, "response body could not be decoded (corrupt compression)") from None
    except httpx.ConnectError as exc:
        raise FetchError(CONNECTION, f"cannot connect to {safe_url(base_url)}: {_short(exc)}") from None
    except httpx.RemoteProtocolError as exc:
        if "location header" in str(exc).lower():  # httpx before 0.28 reads a redirect's Location eagerly
            raise FetchError(HTTP_ERROR, BAD_LOCATION) from None
        raise FetchError(CONNECTION, f"connection broken: {_short(exc)}") from None
    except httpx.InvalidURL:  # likewise: a Location httpx cannot parse, even though redirects are not followed
        raise FetchError(HTTP_ERROR, BAD_LOCATION) from None
    except httpx.HTTPError as exc:
        raise FetchError(CONNECTION, f"{type(exc).__name__}: {_short(exc)}") from None
    except OSError as exc:
        raise FetchError(CONNECTION, f"{type(exc).__name__}: {exc.strerror or exc}") from None


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return shorten(text[0], 200) if text else type(exc).__name__
