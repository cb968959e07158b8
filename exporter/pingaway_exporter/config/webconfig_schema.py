"""The shape of ``--web.config.file`` (exporter-toolkit's ``web-config.yml``), as msgspec Structs.

Every field the toolkit documents is declared, so a typo is an "unknown field" error naming it, and
each has the type the toolkit gives it. Fields pingaway-exporter refuses (inline PEM, Go cipher suite
names, rate limiting) are declared loosely (``Any``), so that whatever they hold is refused by
``config.webconfig`` with the reason, not with a type error. An empty string means unset, as in the
toolkit; ``config.webconfig`` reads it so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, field

Text = Annotated[str | None, Meta(description="a string")]
Strings = Annotated[list[Annotated[str, Meta(description="a string")]] | None,
                    Meta(description="a list of strings")]


class TLSServerSchema(Struct, forbid_unknown_fields=True, frozen=True):
    cert_file: Text = None
    key_file: Text = None
    client_ca_file: Text = None
    client_auth_type: Text = None
    min_version: Text = None
    max_version: Text = None
    client_allowed_sans: Strings = None
    prefer_server_cipher_suites: bool | None = None
    cipher_suites: Any = None
    curve_preferences: Any = None
    cert: Any = None
    key: Any = None
    client_ca: Any = None


class HeadersSchema(Struct, forbid_unknown_fields=True, frozen=True):
    """The security headers the toolkit lets a web-config set, under their HTTP names."""

    content_security_policy: Text = field(default=None, name="Content-Security-Policy")
    x_frame_options: Text = field(default=None, name="X-Frame-Options")
    x_content_type_options: Text = field(default=None, name="X-Content-Type-Options")
    x_xss_protection: Text = field(default=None, name="X-XSS-Protection")
    strict_transport_security: Text = field(default=None, name="Strict-Transport-Security")

    def items(self) -> Iterator[tuple[str, str]]:
        """(HTTP header name, value) of each header that is set, in the order above."""
        for name, value in (("Content-Security-Policy", self.content_security_policy),
                            ("X-Frame-Options", self.x_frame_options),
                            ("X-Content-Type-Options", self.x_content_type_options),
                            ("X-XSS-Protection", self.x_xss_protection),
                            ("Strict-Transport-Security", self.strict_transport_security)):
            if value:
                yield name, value


class HTTPServerSchema(Struct, forbid_unknown_fields=True, frozen=True):
    http2: bool | None = None  # accepted for compatibility; this server speaks HTTP/1.1
    headers: HeadersSchema | None = None


class RateLimitSchema(Struct, forbid_unknown_fields=True, frozen=True):
    interval: Any = UNSET  # anything but 0 is refused: rate limiting is not supported
    burst: Any = None


class WebConfigSchema(Struct, forbid_unknown_fields=True, frozen=True):
    tls_server_config: TLSServerSchema | None = None
    http_server_config: HTTPServerSchema | None = None
    # user name -> bcrypt hash; both are checked by hand, so that a bad name is named (even a number)
    basic_auth_users: Annotated[dict[Any, Any] | None, Meta(description="a mapping of user names to bcrypt "
                                                                         "hashes")] = None
    rate_limit: RateLimitSchema | None = None


TOP = "the top level must be a mapping"

