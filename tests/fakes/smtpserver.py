"""A real SMTP server on 127.0.0.1 (aiosmtpd) for provider tests, with scriptable replies.

    with FakeSmtpServer(tls=context, users={"user": "secret"}) as server:
        server.port
        server.messages        # email.message.EmailMessage objects received, in order
        server.connections     # how many connections carried a transaction
        server.rcpt_replies.append("450 4.2.1 try later")   # the next RCPT gets this
        server.data_replies.append("554 5.7.1 spam")        # the next DATA gets this
        server.data_actions.append("drop")                  # or "wait": a 1 s pause before replying

Connections are counted by SMTP session, so STARTTLS (two EHLOs) still counts once.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from email import message_from_bytes
from email.policy import default as default_policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeSmtpServer:
    def __init__(self, *, starttls: ssl.SSLContext | None = None, implicit_tls: ssl.SSLContext | None = None,
                 users: dict[str, str] | None = None):
        self.messages = []
        self.envelopes = []
        self.rcpt_replies: list[str] = []
        self.data_replies: list[str] = []
        self.data_actions: list[str] = []
        self._sessions: list = []  # kept alive, so ids stay unique
        self.servers: list = []
        self.users = users
        kwargs = {}
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if users is not None:
            # aiosmtpd does not count SMTPS as TLS, so AUTH is enforced only together with STARTTLS
            kwargs.update(authenticator=self._authenticate, auth_required=starttls is not None,
                          auth_require_tls=starttls is not None)
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, ssl_context=implicit_tls,
                                     server_hostname="fake.smtp.test", **kwargs)

    @property
    def connections(self) -> int:
        return len({id(s) for s in self._sessions})

    def drop_connections(self) -> None:
        """Close every open connection from the server side (an idle timeout)."""
        for server in self.servers:
            self.controller.loop.call_soon_threadsafe(server.transport.close)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False)

    # -- aiosmtpd handler hooks ---------------------------------------------------------
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not any(s is session for s in self._sessions):
            self._sessions.append(session)
            self.servers.append(server)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        action = self.data_actions.pop(0) if self.data_actions else None
        if action == "wait":
            await asyncio.sleep(1.0)
        if action == "drop":
            server.transport.close()
            return "250 never seen"
        if self.data_replies:
            return self.data_replies.pop(0)
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.original_content, policy=default_policy))
        return "250 2.0.0 queued"

    def __enter__(self) -> "FakeSmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
