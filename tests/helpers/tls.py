"""Web configs for TLS and Basic auth in tests: a --web.config.file on disk, a Basic-auth user with a bcrypt
hash, a client SSL context that trusts the test CA, and an exporter started with such a file.

``pki`` is the fixture in tests/conftest.py (a throwaway CA from tests/helpers/certs.py): a dict with the
"ca", and "server", "client" and "stranger" certificates.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import bcrypt

from pingaway_exporter.config import webconfig

USER, PASSWORD = "prometheus", "scrape-me-Ö-42"


def bcrypt_hash(password: str, prefix: str = "$2y$", cost: int = 4) -> str:
    """As `htpasswd -nBC` makes it ($2y$); cost 4 keeps the suite quick."""
    return prefix + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()[4:]


def write_config(tmp_path: Path, text: str, name: str = "web.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def tls_yaml(pki, extra: str = "", users: bool = True) -> str:
    text = f"""tls_server_config:
  cert_file: {pki['server'].cert}
  key_file: {pki['server'].key}
{extra}"""
    if users:
        text += f"basic_auth_users:\n  {USER}: {bcrypt_hash(PASSWORD)}\n"
    return text


def client_ctx(pki, cert=None, **versions) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"].pem))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    for name, version in versions.items():
        setattr(ctx, name, version)
    return ctx


def start(exporter_factory, sim, path):
    return exporter_factory(sim, web_config=webconfig.load(path))
