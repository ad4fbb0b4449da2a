"""The documented team deployment, used as its users use it: through nginx and TLS, with two gunicorn
workers, two Celery workers, one beat, PostgreSQL and Redis, production settings (tests/deploy/stack.py)."""

from __future__ import annotations

import re
import secrets
import socket
import ssl
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.deploy.stack import HOST, Stack

pytestmark = pytest.mark.integration

CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
PID = re.compile(rb"pid=<?(\d+)")


def client(stack: Stack, source: str | None = None) -> httpx.Client:
    """A browser-like client; `source` binds another loopback address (127.0.0.2, ...) as a
    different person's machine would have."""
    verify = ssl.create_default_context(cafile=str(stack.cert))
    transport = httpx.HTTPTransport(verify=verify, local_address=source)
    return httpx.Client(base_url=stack.url, transport=transport, timeout=30, follow_redirects=False)


def sign_in(http: httpx.Client, stack: Stack, username: str, password: str) -> httpx.Response:
    form = http.get("/login/")
    token = CSRF_FIELD.search(form.text)
    assert token, form.text[:500]
    return http.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{stack.url}/login/"},
    )


def make_user(stack: Stack, username: str, role: str) -> str:
    password = secrets.token_urlsafe(12)
    stack.manage("create_user", username, "--role", role, "--password-env", "NEW_PASSWORD",
                 extra_env={"NEW_PASSWORD": password})  # fmt: skip
    return password


def gunicorn_pids_since(stack: Stack, offset: int) -> Counter[int]:
    """Which gunicorn worker answered each request logged after `offset` (the access log's pid=)."""
    data = stack.logs["batch-dashboard-web"].read_bytes()[offset:]
    return Counter(int(pid) for pid in PID.findall(data))


def web_log_size(stack: Stack) -> int:
    return stack.logs["batch-dashboard-web"].stat().st_size


def spread_get(stack: Stack, path: str, cookies: httpx.Cookies, count: int = 40) -> list[httpx.Response]:
    """`count` requests at once, each on its own connection, so that nginx opens several upstream
    connections and the kernel hands them to different gunicorn workers."""

    def one(_: int) -> httpx.Response:
        with client(stack) as http:
            http.cookies = cookies
            return http.get(path)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def test_it_serves_the_sign_in_page_over_tls_with_production_headers(stack: Stack):
    with client(stack) as http:
        response = http.get("/login/")
    assert response.status_code == 200
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
    assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "nginx/" not in response.headers.get("server", "")  # server_tokens off
    cookie = response.headers["set-cookie"]
    assert "csrftoken=" in cookie and "Secure" in cookie


def test_plain_http_is_redirected_to_https(stack: Stack):
    response = httpx.get(f"http://{HOST}:{stack.http_port}/batches/1/", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"].startswith(f"https://{HOST}")


def test_nginx_serves_the_collected_static_files(stack: Stack):
    with client(stack) as http:
        response = http.get("/static/css/app.css")
    assert response.status_code == 200
    assert "text/css" in response.headers["content-type"]
    offset = web_log_size(stack)
    with client(stack) as http:
        http.get("/static/css/app.css")
    assert b"/static/" not in stack.logs["batch-dashboard-web"].read_bytes()[offset:]


def test_the_stack_runs_two_web_workers_two_celery_workers_and_one_beat(stack: Stack):
    for name in ("batch-dashboard-web", "batch-dashboard-events", "batch-dashboard-worker1",
                 "batch-dashboard-worker2", "batch-dashboard-beat", "nginx"):  # fmt: skip
        assert stack.processes[name].poll() is None, stack.logs[name].read_text()[-2000:]
    log = stack.logs["batch-dashboard-web"].read_text()
    assert len(set(re.findall(r"Booting worker with pid: (\d+)", log))) >= 2


def test_signed_in_pages_show_batches_the_workers_synced(stack: Stack):
    with client(stack) as http:
        assert sign_in(http, stack, "admin", stack.env["ADMIN_PASSWORD"]).status_code == 302
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            page = http.get("/")
            assert page.status_code == 200
            if "/batches/" in page.text and "batch_" in page.text:
                return
            time.sleep(1)
    pytest.fail("no synced batch appeared on the list within 60 s:\n" + stack.log_text()[-4000:])


def test_signing_out_in_one_web_worker_ends_the_session_in_every_worker(stack: Stack):
    password = make_user(stack, "signout", "viewer")
    with client(stack) as http:
        assert sign_in(http, stack, "signout", password).status_code == 302
        cookies = httpx.Cookies(http.cookies)
        offset = web_log_size(stack)
        before = spread_get(stack, "/", cookies)
        assert {response.status_code for response in before} == {200}
        # The session was used in more than one process: otherwise this test could not tell.
        assert len(gunicorn_pids_since(stack, offset)) >= 2

        logout = http.post(
            "/logout/",
            data={"csrfmiddlewaretoken": http.cookies["csrftoken"]},
            headers={"Referer": f"{stack.url}/", "X-CSRFToken": http.cookies["csrftoken"]},
        )
        assert logout.status_code == 302

    offset = web_log_size(stack)
    after = spread_get(stack, "/", cookies)
    assert len(gunicorn_pids_since(stack, offset)) >= 2
    assert [response.status_code for response in after] == [302] * len(after)
    assert all(response.headers["location"].startswith("/login/") for response in after)


def test_a_signed_in_page_is_nudged_through_nginx_when_a_connection_changes(stack: Stack):
    with client(stack) as http:
        assert sign_in(http, stack, "admin", stack.env["ADMIN_PASSWORD"]).status_code == 302
        # The list's poll element says where its events stream is, as nginx serves it.
        assert 'data-events="/live/events/"' in http.get("/").text
        http.timeout = httpx.Timeout(30, read=10)
        with http.stream("GET", "/live/events/", params={"w": "all"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert next(lines).startswith("retry: ")
            # A change counted by the writer's path (batches.live.bump) in another process.
            change = "from batches import live, models; live.bump(models.Connection.objects.first().pk)"
            stack.manage("shell", "-c", change)
            deadline = time.monotonic() + 10
            for line in lines:
                if line == "event: change":
                    break
                assert time.monotonic() < deadline, "no change event within 10 s"
            else:
                pytest.fail("the stream ended without a change event")


def test_an_anonymous_request_for_the_events_stream_gets_403_through_nginx(stack: Stack):
    with client(stack) as http:
        response = http.get("/live/events/", params={"w": "all"})
    assert response.status_code == 403
    assert "event-stream" not in response.headers.get("content-type", "")


def test_failures_from_one_address_do_not_lock_out_the_same_user_from_another(stack: Stack):
    password = make_user(stack, "lockme", "operator")
    limit = 5  # DASHBOARD_LOGIN_FAILURE_LIMIT's default
    with client(stack, source="127.0.0.2") as attacker:
        for _ in range(limit):
            sign_in(attacker, stack, "lockme", "wrong-password")
        assert sign_in(attacker, stack, "lockme", password).status_code == 429
        # A forged X-Forwarded-For does not get round the lock: nginx replaces the header.
        attacker.headers["X-Forwarded-For"] = "198.51.100.1"
        assert sign_in(attacker, stack, "lockme", password).status_code == 429
    with client(stack, source="127.0.0.3") as owner:
        assert sign_in(owner, stack, "lockme", password).status_code == 302

    with client(stack) as http:
        sign_in(http, stack, "admin", stack.env["ADMIN_PASSWORD"])
        audit = http.get("/audit/")
    assert audit.status_code == 200
    assert "127.0.0.3" in audit.text  # the owner's sign-in, with the owner's address
    assert "198.51.100.1" not in audit.text


def test_cheap_hostile_requests_get_a_client_error_through_the_proxy(stack: Stack):
    with client(stack) as http:
        webhook = http.post(
            "/webhooks/openai/default/",
            content=b"{}",
            headers={"webhook-id": "msg_1", "webhook-timestamp": "9" * 400, "webhook-signature": "v1,x"},
        )
        assert 400 <= webhook.status_code < 500
        sign_in(http, stack, "admin", stack.env["ADMIN_PASSWORD"])
        poll = http.get(f"/batches/{2**70}/row/", headers={"HX-Request": "true"})
        assert 400 <= poll.status_code < 500


def test_nginx_refuses_a_body_over_the_upload_limit_before_it_reaches_the_app(stack: Stack):
    context = ssl.create_default_context(cafile=str(stack.cert))
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        tls.sendall(
            b"POST /batches/new/ HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: " + str(202 * 1024 * 1024).encode() + b"\r\n\r\n"
        )
        answer = tls.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")


def test_no_secret_reaches_any_log_of_any_process(stack: Stack):
    # Give every process something to log first: a sign-in, a sync round, a failed API call.
    with client(stack) as http:
        sign_in(http, stack, "admin", stack.env["ADMIN_PASSWORD"])
        http.get("/")
    time.sleep(3)
    text = stack.log_text()
    assert "batch-dashboard-beat" in stack.logs and text
    for secret in stack.secrets():
        assert secret not in text
