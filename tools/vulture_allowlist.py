"""Names vulture cannot see used, for tests/tools/test_dead_code.py: framework hooks and wire fields.

Each line is a use of a name that only a framework or a wire format uses: the standard library's
``http.server``, ``socketserver`` and httptools call these hooks and read these settings; the web-config schema
accepts keys exporter-toolkit documents (and ignores some, as Go does); signal handlers take a frame.
"""

# ruff: noqa
from pingaway_exporter.config.webconfig_schema import TLSServerSchema
from pingaway_exporter.demo.handler import Handler
from pingaway_exporter.upstream.token_claims import TokenClaims
from pingaway_exporter.web.protocol import _Message

Handler.protocol_version  # http.server: HTTP/1.1 keep-alive
Handler.disable_nagle_algorithm  # socketserver
Handler.log_message  # http.server hook
Handler.do_GET  # http.server hook
Handler.do_POST  # http.server hook
Handler.close_connection  # http.server reads it after each request
TLSServerSchema.prefer_server_cipher_suites  # accepted and ignored, as Go >= 1.17 does
TokenClaims.algorithm  # the token header's alg, kept with the claims
_Message.on_message_begin  # httptools.HttpRequestParser calls these by name
_Message.on_url
_Message.on_header
_Message.on_headers_complete
_Message.on_body
_Message.on_message_complete
daemon_threads  # socketserver.ThreadingMixIn
allow_reuse_address  # socketserver.TCPServer
request_queue_size  # socketserver.TCPServer
handle_error  # socketserver hook
client_address  # socketserver hook's argument
frame  # signal handlers' second argument
set_ok  # http.cookiejar.CookiePolicy hook
