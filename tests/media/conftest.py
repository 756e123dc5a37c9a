"""Fixtures for media tests; the helpers behind them live in `support`."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import IMAGES, Certificate, LocalServer, RecordingTransport, serve


@pytest.fixture
def images() -> Path:
    if not IMAGES.is_dir():
        pytest.skip(f"shared test images not found at {IMAGES}")
    return IMAGES


@pytest.fixture
def recording() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    yield from serve(None)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for the name `images.test` only (no IP address in it)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    made = Certificate(cert=folder / "cert.pem", key=folder / "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=images.test",
         "-addext", "subjectAltName=DNS:images.test",
         "-keyout", str(made.key), "-out", str(made.cert)],
        check=True, capture_output=True,
    )
    return made


@pytest.fixture
def https_server(certificate: Certificate) -> Iterator[LocalServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert, certificate.key)
    yield from serve(context)
