"""The SMTP backend: sends messages to ``EMAIL_HOST`` with Django's open/close reuse rules.

Security defaults differ from Django where Django is unsafe: certificates are verified,
``use_tls`` means STARTTLS is required (never a silent downgrade) and timeouts are on.
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mailout.address import parse_address
from mailout.backends.base import BaseEmailBackend
from mailout.conf import settings
from mailout.exceptions import ImproperlyConfigured, SMTPSecurityError
from mailout.message import serialize_message
from mailout.utils import DNS_NAME

if TYPE_CHECKING:
    from mailout.message import EmailMessage

__all__ = ["EmailBackend"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmailBackend(BaseEmailBackend):
    """Send over SMTP. Options default to the ``EMAIL_*`` settings, read when created."""

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool | None = None,
        fail_silently: bool = False,
        use_ssl: bool | None = None,
        timeout: float | None = None,
        ssl_keyfile: str | None = None,
        ssl_certfile: str | None = None,
        *,
        ssl_cafile: str | None = None,
        allow_insecure_auth: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        self.host = host if host is not None else settings.EMAIL_HOST
        self.port = port if port is not None else settings.EMAIL_PORT
        self.username = settings.EMAIL_HOST_USER if username is None else username
        self._password = settings.EMAIL_HOST_PASSWORD if password is None else password
        self.use_tls = settings.EMAIL_USE_TLS if use_tls is None else bool(use_tls)
        self.use_ssl = settings.EMAIL_USE_SSL if use_ssl is None else bool(use_ssl)
        self.timeout = settings.EMAIL_TIMEOUT if timeout is None else timeout
        self.ssl_keyfile = settings.EMAIL_SSL_KEYFILE if ssl_keyfile is None else ssl_keyfile
        self.ssl_certfile = settings.EMAIL_SSL_CERTFILE if ssl_certfile is None else ssl_certfile
        self.ssl_cafile = settings.EMAIL_SSL_CAFILE if ssl_cafile is None else ssl_cafile
        self.allow_insecure_auth = allow_insecure_auth
        if self.use_tls and self.use_ssl:
            raise ImproperlyConfigured(
                "EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive: set one of them, not both"
            )
        self.connection: smtplib.SMTP | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:  # never the password
        return f"<smtp.EmailBackend {self.host}:{self.port} user={self.username or None!r}>"

    @property
    def password(self) -> str:
        return self._password

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def open(self) -> bool | None:
        """Connect (and log in); return True if this call opened the connection."""
        if self.connection is not None:
            return False
        kwargs: dict[str, Any] = {"local_hostname": DNS_NAME.get_fqdn()}
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        try:
            if self.use_ssl:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, context=self.ssl_context(), **kwargs
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, **kwargs)
            try:
                if self.use_tls:
                    # smtplib raises SMTPNotSupportedError when STARTTLS is not offered:
                    # we stop there rather than carry on in plain text.
                    conn.starttls(context=self.ssl_context())
                if self.username and self._password:
                    encrypted = self.use_tls or self.use_ssl
                    if (
                        not encrypted
                        and not self.allow_insecure_auth
                        and not _is_loopback(self.host)
                    ):
                        raise SMTPSecurityError(
                            "refusing to send credentials over an unencrypted connection to "
                            f"{self.host}; set EMAIL_USE_TLS or EMAIL_USE_SSL"
                        )
                    conn.login(self.username, self._password)
            except BaseException:
                conn.close()
                raise
            self.connection = conn
            return True
        except OSError:
            if not self.fail_silently:
                raise
            return None

    def close(self) -> None:
        with self._lock:
            if self.connection is None:
                return
            try:
                try:
                    self.connection.quit()
                except (ssl.SSLError, smtplib.SMTPServerDisconnected, OSError):
                    self.connection.close()
                except smtplib.SMTPException:
                    if not self.fail_silently:
                        raise
            finally:
                self.connection = None

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        messages = [m for m in email_messages if m.recipients()]
        if not messages:
            return 0
        for message in messages:
            message.message()  # bad input fails here, before anything is sent
        with self._lock:
            new_connection = self.open()
            if not self.connection or new_connection is None:
                return 0
            sent = 0
            try:
                for message in messages:
                    if self._send(message):
                        sent += 1
            finally:
                if new_connection:
                    self.close()
        return sent

    def _send(self, message: EmailMessage) -> bool:
        assert self.connection is not None
        try:
            smtputf8 = message.needs_smtputf8()
            self.connection.ehlo_or_helo_if_needed()
            supports_utf8 = self.connection.has_extn("smtputf8")
            data = serialize_message(message, smtputf8_ok=supports_utf8)
            sender = parse_address(message.from_email, field="from_email").addr_spec
            recipients = [
                parse_address(r, field="recipients").addr_spec for r in message.recipients()
            ]
            options = ["SMTPUTF8"] if smtputf8 else []
            self.connection.sendmail(sender, recipients, data, mail_options=options)
        except OSError:  # smtplib's errors and mailout's SMTPError are OSErrors
            if not self.fail_silently:
                raise
            return False
        return True
