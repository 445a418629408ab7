"""Local receivers for the alert delivery tests: a webhook (HTTP) and a mail server (SMTP).

Both listen on 127.0.0.1 only, on a free port, and keep what they received.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class WebhookReceiver:
    """What the local webhook received, and the answers it gives (a script of status codes)."""

    url: str = ""
    bodies: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    status: int = 200
    #: Seconds to hold each request before answering (a hanging receiver).
    hold: float = 0.0
    holding: threading.Event = field(default_factory=threading.Event)

    def next_status(self) -> int:
        return self.script.pop(0) if self.script else self.status


@contextmanager
def webhook_receiver(path: str = "/services/T000/B000/secret-token") -> Iterator[WebhookReceiver]:
    """A webhook on 127.0.0.1 that records every JSON body posted to it."""
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            receiver.paths.append(self.path)
            receiver.bodies.append(json.loads(raw))
            if receiver.hold:
                receiver.holding.set()
                time.sleep(receiver.hold)
            status = receiver.next_status()
            body = b"ok" if status == 200 else b"no"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A TCP port nobody listens on (right now) on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MailReceiver:
    """What the local mail server received."""

    port: int
    messages: list = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def url(self, user: str, password: str) -> str:
        return (
            f"smtp://{user}:{password}@127.0.0.1:{self.port}?starttls=false&from=alerts@bank.test"
        )


@contextmanager
def mail_receiver(user: str, password: str) -> Iterator[MailReceiver]:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that wants a login and keeps every message."""
    receiver = MailReceiver(port=free_port())

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            receiver.messages.append(envelope)
            return "250 Message accepted"

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        if ok:
            receiver.logins.append(user)
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=receiver.port,
        authenticator=authenticate,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()
