"""Connections may not hand the server's network to whoever administers them (issue 13, hole 4): internal
addresses are refused, requests go to the checked address, TLS keeps the host name, and a base URL the
client cannot send to is a form error.

Nothing here leaves loopback: the `no_traffic_off_loopback` guard turns any connect to another address
into a refused connection (and records it), and `fake_dns` answers for invented names only.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import httpx
import pytest

from batches import connections
from batches.models import Connection
from tests.unit.connection_security.support import PageServer, connection_form, run_test

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.216.34"  # a public address; the guard refuses any connect to it


# --- hole 4: internal addresses ------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:{port}/v1",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::1]:{port}/v1",
        "http://localhost:{port}/v1",
    ],
)
def test_a_base_url_on_an_internal_address_is_refused_by_default(
    admin_client, settings, start_page_server, no_traffic_off_loopback, base_url
):
    settings.DASHBOARD_ALLOW_INTERNAL_API_URLS = False
    server = start_page_server(200, b"{}")
    response = admin_client.post(
        "/connections/new/", connection_form(base_url=base_url.format(port=server.port))
    )
    assert response.status_code == 200
    assert "The URL leads to an internal address" in response.content.decode()
    assert not Connection.objects.filter(name="team-b").exists()
    assert server.requests == [] and no_traffic_off_loopback == []


def test_a_deployment_may_allow_gateways_on_the_internal_network(admin_client, settings, simulator):
    settings.DASHBOARD_ALLOW_INTERNAL_API_URLS = True
    response = admin_client.post("/connections/new/", connection_form(base_url=simulator.base_url))
    assert response.status_code == 302


def test_a_connection_saved_before_the_rule_is_refused_at_use(
    admin_client, settings, start_page_server, monkeypatch
):
    settings.DASHBOARD_ALLOW_INTERNAL_API_URLS = False
    monkeypatch.setenv("OPENAI_API_KEY_TEAM2", "sk-team2-abcdefgh1234")
    server = start_page_server(200, b'{"object": "list", "data": [], "has_more": false}', "application/json")
    connection = Connection.objects.create(
        name="inside", base_url=f"{server.url}/v1", api_key_env="OPENAI_API_KEY_TEAM2"
    )
    page = run_test(admin_client, connection)
    assert server.requests == []
    assert "internal address (127.0.0.1)" in page


def test_the_environments_connection_may_use_loopback(settings, simulator):
    # `make run` points OPENAI_BASE_URL at the simulator on loopback: the operator's own choice.
    settings.DASHBOARD_ALLOW_INTERNAL_API_URLS = False
    settings.OPENAI_BASE_URL = simulator.base_url
    settings.OPENAI_API_KEY = "sk-environment-abcdefgh"
    with connections.client_for(connections.environment_connection()) as client:
        page = next(client.list_batch_pages(limit=1))
    assert len(page.data) == 1


# --- hole 4: the request goes to the address that was checked ------------------------------------


def test_a_connection_connects_to_the_address_it_checked_not_to_a_second_answer(
    admin_client, fake_dns, simulator, monkeypatch
):
    # First answer: the simulator on 127.0.0.1. Any later answer: 127.0.0.2, where nothing listens.
    port = int(simulator.base_url.rsplit(":", 1)[1].split("/")[0])
    fake_dns.set("gateway.test", ["127.0.0.1"], ["127.0.0.2"])
    monkeypatch.setenv("OPENAI_API_KEY_GW", "sk-gateway-abcdefgh")
    connection = Connection.objects.create(
        name="gw", base_url=f"http://gateway.test:{port}/v1", api_key_env="OPENAI_API_KEY_GW"
    )
    for _ in range(2):
        assert "the API answered" in run_test(admin_client, connection)
        # Without the pin, connecting would have asked again, and got 127.0.0.2.
        assert fake_dns.lookups["gateway.test"] == 1
        fake_dns.set("gateway.test", ["127.0.0.1"], ["127.0.0.2"])


def test_a_name_that_resolves_publicly_first_never_reaches_an_internal_address_later(
    admin_client, fake_dns, settings, start_page_server, monkeypatch, no_traffic_off_loopback
):
    settings.DASHBOARD_ALLOW_INTERNAL_API_URLS = False
    settings.OPENAI_MAX_RETRIES = 1
    settings.OPENAI_CONNECT_TIMEOUT = 1
    server = start_page_server(200, b'{"object": "list", "data": [], "has_more": false}', "application/json")
    fake_dns.set("rebind.test", [PUBLIC], ["127.0.0.1"])
    monkeypatch.setenv("OPENAI_API_KEY_REBIND", "sk-rebind-abcdefgh")
    connection = Connection.objects.create(
        name="rebind", base_url=f"http://rebind.test:{server.port}/v1", api_key_env="OPENAI_API_KEY_REBIND"
    )
    page = run_test(admin_client, connection)
    assert server.requests == []
    assert "Could not reach the API (ConnectError" in page
    assert set(no_traffic_off_loopback) == {PUBLIC}  # the guard refused the pinned public address


# --- the shared module on its own -----------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "::7f00:1",
        "fc00::1",
    ],
)
def test_internal_addresses_are_recognised(address):
    from dashboard import outbound

    assert outbound.is_internal(address)


@pytest.mark.parametrize("address", ["8.8.8.8", PUBLIC, "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_are_not_internal(address):
    from dashboard import outbound

    assert not outbound.is_internal(address)


def test_the_pinned_transport_refuses_an_internal_address_before_connecting(
    fake_dns, no_traffic_off_loopback
):
    from dashboard import outbound

    fake_dns.set("metadata.test", ["169.254.169.254"])
    transport = outbound.PinnedTransport(allow_internal=False)
    with pytest.raises(outbound.Refused, match=r"internal address \(169\.254\.169\.254\)"):
        transport.pin("http://metadata.test/latest/meta-data/")
    # A host first met at connect time (no pin() before) is checked there, and refused alike.
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError, match="internal"):
        client.get("http://metadata.test/latest/meta-data/")
    assert no_traffic_off_loopback == []


def test_the_pinned_transport_connects_to_the_first_answer(fake_dns, start_page_server):
    from dashboard import outbound

    server = start_page_server(200, b"hello")
    fake_dns.set("pinned.test", ["127.0.0.1"], ["127.0.0.2"])
    transport = outbound.PinnedTransport(allow_internal=True)
    assert transport.pin(f"http://pinned.test:{server.port}/") == ("127.0.0.1",)
    for _ in range(2):
        # Without the pin, a fresh transport asks again and gets 127.0.0.2, where nothing listens.
        fresh = httpx.Client(transport=outbound.PinnedTransport(allow_internal=True))
        with fresh, pytest.raises(httpx.ConnectError):
            fresh.get(f"http://pinned.test:{server.port}/")
    with httpx.Client(transport=transport) as client:
        assert client.get(f"http://pinned.test:{server.port}/page").text == "hello"
    assert server.requests[-1]["host"] == f"pinned.test:{server.port}"


# --- TLS keeps the host name ----------------------------------------------------------------------


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_tls_through_the_pinned_address_verifies_the_original_host_name(fake_dns, tmp_path):
    from dashboard import outbound

    cert, key = _self_signed(tmp_path, "api.pinned.test")
    server_names: list[str | None] = []
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.sni_callback = lambda _sock, server_name, _ctx: server_names.append(server_name)

    server = PageServer(200, b"over tls", tls=server_context)
    try:
        fake_dns.set("api.pinned.test", ["127.0.0.1"])
        fake_dns.set("other.pinned.test", ["127.0.0.1"])
        client_context = ssl.create_default_context(cafile=str(cert))
        transport = outbound.PinnedTransport(allow_internal=True, verify=client_context)
        with httpx.Client(transport=transport) as client:
            response = client.get(f"https://api.pinned.test:{server.port}/")
            assert response.text == "over tls"
            assert server_names == ["api.pinned.test"]  # SNI: the host name, not 127.0.0.1
            assert server.requests[-1]["host"] == f"api.pinned.test:{server.port}"
            # Same address, another name: the certificate is checked against the name, so it fails.
            with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|Hostname mismatch"):
                client.get(f"https://other.pinned.test:{server.port}/")
    finally:
        server.close()


@pytest.mark.parametrize("base_url", ["http://☃.com/v1", "http://[::1/v1", "http://h:99999/v1", "ftp://h/v1"])
def test_a_base_url_the_client_cannot_send_to_is_a_form_error(admin_client, base_url):
    response = admin_client.post("/connections/new/", connection_form(base_url=base_url))
    assert response.status_code == 200
    assert "Enter an http:// or https:// URL." in response.content.decode()
