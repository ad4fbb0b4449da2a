"""What the connection security tests share: a recording page server that is not the API, a connection
form to post, and pressing a connection's "Test" button."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from batches.models import Connection
from tests.conftest import free_port


class PageServer:
    """Answers every GET with `status` and `body`, and records the requests' headers."""

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        content_type: str = "text/html",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.requests: list[dict[str, str]] = []
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server_self.requests.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll_interval: shutdown() waits for it (0.5 s by default) in every test.
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def connection_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "team-b",
        "provider": "openai",
        "base_url": f"http://127.0.0.1:{free_port()}/v1",
        "key_storage": "env",
        "api_key_env": "OPENAI_API_KEY_TEAM2",
        "enabled": "on",
        "refresh_interval": 15,
        "full_sync_interval": 300,
    }
    data.update(overrides)
    return data


def run_test(client, connection: Connection) -> str:
    return client.post(f"/connections/{connection.pk}/test/", follow=True).content.decode()
