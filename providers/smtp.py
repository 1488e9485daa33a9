"""SMTP with one pooled connection per worker thread (providers.md §10.1).

Each thread keeps its own ``smtplib`` connection (``threading.local``), reuses it for
``max_messages_per_connection`` messages (default 100), then quits and opens a new one.
A pooled connection the server closed meanwhile is noticed before DATA and reopened once.

Replies map by the step that got them::

    connect/TLS/login   refused, timeout → transient; 535 / no AUTH / bad certificate → provider blocked
    MAIL FROM           4xx → transient; 5xx → provider blocked (the sender is refused)
    RCPT TO             4xx → transient; 5xx → permanent recipient
    DATA and content    4xx → transient; 5xx → permanent content
                        a disconnect or timeout once DATA is sent → ambiguous (it may have been queued)

Settings beyond the brief: ``ca_file`` (a CA bundle to trust, e.g. a private relay's
certificate) and ``local_hostname`` (the EHLO name; default the machine's FQDN).
"""
from __future__ import annotations

import smtplib
import ssl
import threading
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

from .base import AccountState, OutgoingMessage, Provider, SendResult, SECRET_KEYS, mask_secret
from .email import list_headers, sender_address
from .errors import (
    AmbiguousSendError,
    PermanentContentError,
    PermanentRecipientError,
    ProviderBlockedError,
    ProviderConfigError,
    ProviderError,
    TransientError,
)

__all__ = ["SmtpProvider"]

#: 5xx at each step → outcome (4xx is always transient)
PERMANENT = {
    "connect": ProviderBlockedError,
    "login": ProviderBlockedError,
    "mail": ProviderBlockedError,
    "rcpt": PermanentRecipientError,
    "data": PermanentContentError,
}

#: non-ASCII text goes out as quoted-printable or base64, so any relay takes it (no 8BITMIME needed)
POLICY = SMTP_POLICY.clone(cte_type="7bit")


class SmtpProvider(Provider):
    """Email over SMTP (STARTTLS or implicit TLS), pooling a connection per thread."""

    type = "smtp"
    channels = frozenset({"email"})
    required = ("host", "from")
    optional = ("port", "username", "password", "starttls", "ssl", "max_messages_per_connection",
                "ca_file", "local_hostname")

    def __init__(self, name, settings):
        super().__init__(name, settings)
        self._local = threading.local()
        self._open: set[smtplib.SMTP] = set()  # every pooled connection, so close() reaches all threads

    def validate_settings(self) -> None:
        super().validate_settings()
        sender_address(self.settings["from"])
        if self.settings.get("starttls") and self.settings.get("ssl"):
            raise ProviderConfigError("ssl", "set either starttls (port 587) or ssl (port 465), not both")
        if self._per_connection < 1:
            raise ProviderConfigError("max_messages_per_connection", "must be 1 or more")

    @property
    def _per_connection(self) -> int:
        value = self.settings.get("max_messages_per_connection")
        return 100 if value in (None, "") else int(value)

    @property
    def port(self) -> int:
        return int(self.settings.get("port") or (465 if self.settings.get("ssl") else
                                                 587 if self.settings.get("starttls") else 25))

    # -- the message ------------------------------------------------------------------
    def build_message(self, message: OutgoingMessage) -> EmailMessage:
        """The MIME message: text, optional HTML alternative, our Message-ID and the message's headers."""
        domain = sender_address(self.settings["from"])[1].rpartition("@")[2]
        mime = EmailMessage(policy=POLICY)
        mime["Subject"] = message.subject or ""
        mime["From"] = self.settings["from"]
        mime["To"] = message.to
        mime["Message-ID"] = f"<{message.message_id}@{domain}>"
        for name, value in list_headers(message).items():
            del mime[name]
            mime[name] = value
        mime.set_content(message.text)
        if message.html:
            mime.add_alternative(message.html, subtype="html")
        return mime

    # -- connections ------------------------------------------------------------------
    def _connect(self) -> smtplib.SMTP:
        s, local = self.settings, self.settings.get("local_hostname")
        context = ssl.create_default_context(cafile=s.get("ca_file"))
        conn = None
        try:
            if s.get("ssl"):
                conn = smtplib.SMTP_SSL(s["host"], self.port, local, timeout=self.timeout, context=context)
            else:
                conn = smtplib.SMTP(s["host"], self.port, local, timeout=self.timeout)
                if s.get("starttls"):
                    conn.starttls(context=context)
            if s.get("username"):
                conn.login(str(s["username"]), str(s.get("password") or ""))
            conn.ehlo_or_helo_if_needed()
        except OSError as err:  # smtplib errors included
            if conn is not None:
                conn.close()
            raise self._error(err, "login" if conn is not None else "connect") from None
        return conn

    def _pooled(self) -> smtplib.SMTP:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._local.sent = 0
            with self._lock:
                self._open.add(conn)
        return conn

    def _discard(self, polite: bool = False) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is None:
            return
        with self._lock:
            self._open.discard(conn)
        _close(conn, polite)

    # -- send -------------------------------------------------------------------------
    def send(self, message: OutgoingMessage) -> SendResult:
        try:
            mime = self.build_message(message)
        except (ValueError, TypeError) as err:  # e.g. a header value with a line break
            raise PermanentContentError(f"cannot build the email: {err}", provider=self.name) from err
        for attempt in (1, 2):
            conn = self._pooled()
            reused = self._local.sent > 0
            try:
                self._transaction(conn, mime, message.to)
            except smtplib.SMTPServerDisconnected as err:
                # the server closed an idle pooled connection before we got to DATA: reopen once
                self._discard()
                if attempt == 1 and reused and getattr(err, "phase", "") != "data":
                    continue
                raise self._error(err, getattr(err, "phase", "mail")) from None
            except OSError as err:  # every smtplib error is an OSError
                phase = getattr(err, "phase", "mail")
                self._reset(conn)
                raise self._error(err, phase) from None
            break
        self._local.sent += 1
        if self._local.sent >= self._per_connection:
            self._discard(polite=True)
        return SendResult(provider_message_id=mime["Message-ID"])

    def _transaction(self, conn: smtplib.SMTP, mime: EmailMessage, to: str) -> None:
        """MAIL, RCPT, DATA; an error leaves with ``err.phase`` naming the step that failed."""
        phase = "mail"
        try:
            code, reply = conn.mail(sender_address(self.settings["from"])[1])
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, "")
            phase = "rcpt"
            code, reply = conn.rcpt(to)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
            phase = "data"
            code, reply = conn.data(mime.as_bytes(policy=POLICY))
            if code != 250:  # smtplib raises only when DATA itself is refused, not the content
                raise smtplib.SMTPDataError(code, reply)
        except OSError as err:
            err.phase = phase
            raise

    def _reset(self, conn: smtplib.SMTP) -> None:
        """RSET after a refused transaction, so the pooled connection stays usable; drop it if not."""
        try:
            if conn.rset()[0] == 250:
                return
        except OSError:
            pass
        self._discard()

    def _error(self, err: Exception, phase: str) -> ProviderError:
        """Map an smtplib/socket failure at ``phase`` to the taxonomy, with secrets masked."""
        if isinstance(err, smtplib.SMTPRecipientsRefused):
            code, reply = next(iter(err.recipients.values()))
        else:
            code, reply = getattr(err, "smtp_code", None), getattr(err, "smtp_error", None)
        if isinstance(reply, bytes):
            reply = reply.decode("utf-8", "replace")
        where = f"{self.settings['host']}:{self.port}"
        text = self.mask(f"{phase} at {where}: {f'{code} {reply}' if code else type(err).__name__ + ' ' + str(err)}")
        if phase == "data" and not code:  # disconnected or timed out (smtplib errors are OSErrors too)
            return AmbiguousSendError(f"no answer after DATA ({text})", provider=self.name)
        if isinstance(err, (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError,
                            ssl.SSLCertVerificationError)):
            return ProviderBlockedError(text, code=code, provider=self.name)
        if code and 500 <= code < 600:
            return PERMANENT[phase](text, code=code, provider=self.name)
        return TransientError(text, code=code, provider=self.name)

    def mask(self, text: str) -> str:
        for key in SECRET_KEYS & set(self.settings):
            if self.settings[key]:
                text = text.replace(str(self.settings[key]), mask_secret(str(self.settings[key])))
        return text

    # -- account and shutdown -----------------------------------------------------------
    def check(self) -> AccountState:
        """Connect, TLS and log in on a fresh connection."""
        try:
            _close(self._connect(), polite=True)
        except ProviderError as err:
            return AccountState(ok=False, detail=str(err))
        user = self.settings.get("username")
        return AccountState(ok=True, detail=f"connected to {self.settings['host']}:{self.port}"
                                            + (f" as {user}" if user else ""))

    def close(self) -> None:
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            _close(conn, polite=True)


def _close(conn: smtplib.SMTP, polite: bool) -> None:
    try:
        conn.quit() if polite else conn.close()
    except OSError:
        conn.close()
