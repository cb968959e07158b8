"""The shape of ``--web.config.file`` (exporter-toolkit's ``web-config.yml``), as msgspec Structs.

Every field the toolkit documents is declared, so a typo is an "unknown key" error naming it, and
each has the type the toolkit gives it. Header values and ``rate_limit.interval`` are declared as any
YAML scalar, because Go's yaml.v2 reads ``X-XSS-Protection: 1`` or ``interval: 0`` into its string or
duration field; ``config.webconfig`` gives them their meaning. An empty string means unset, as in the
toolkit; ``config.webconfig`` reads it so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from msgspec import Meta, Struct, field

Text = Annotated[str | None, Meta(description="a string")]
# A YAML scalar, as Go's yaml.v2 reads into a string field: 1, true and 1.5 are text there.
Scalar = Annotated[str | int | float | bool | None, Meta(description="a single value (text or a number)")]
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
    cipher_suites: Strings = None
    curve_preferences: Strings = None
    cert: Text = None
    key: Text = None
    client_ca: Text = None


class HeadersSchema(Struct, forbid_unknown_fields=True, frozen=True):
    """The security headers the toolkit lets a web-config set, under their HTTP names."""

    content_security_policy: Scalar = field(default=None, name="Content-Security-Policy")
    x_frame_options: Scalar = field(default=None, name="X-Frame-Options")
    x_content_type_options: Scalar = field(default=None, name="X-Content-Type-Options")
    x_xss_protection: Scalar = field(default=None, name="X-XSS-Protection")
    strict_transport_security: Scalar = field(default=None, name="Strict-Transport-Security")

    def items(self) -> Iterator[tuple[str, Scalar]]:
        """(HTTP header name, value) of each header that is set, in the order above."""
        for name, value in (("Content-Security-Policy", self.content_security_policy),
                            ("X-Frame-Options", self.x_frame_options),
                            ("X-Content-Type-Options", self.x_content_type_options),
                            ("X-XSS-Protection", self.x_xss_protection),
                            ("Strict-Transport-Security", self.strict_transport_security)):
            if value is not None and value != "":
                yield name, value


class HTTPServerSchema(Struct, forbid_unknown_fields=True, frozen=True):
    http2: bool | None = None  # accepted for compatibility; this server speaks HTTP/1.1
    headers: HeadersSchema | None = None


class RateLimitSchema(Struct, forbid_unknown_fields=True, frozen=True):
    interval: Scalar = None  # a Go duration ("1s", "500ms"), or a bare number of nanoseconds as yaml.v2 reads it
    burst: Annotated[int, Meta(ge=0, description="a whole number >= 0")] = 0


class WebConfigSchema(Struct, forbid_unknown_fields=True, frozen=True):
    tls_server_config: TLSServerSchema | None = None
    http_server_config: HTTPServerSchema | None = None
    # user name -> bcrypt hash; both are checked by hand, so that a bad name is named (even a number)
    basic_auth_users: Annotated[dict[Any, Any] | None, Meta(description="a mapping of user names to bcrypt "
                                                                         "hashes")] = None
    rate_limit: RateLimitSchema | None = None


TOP = "the top level must be a mapping"

