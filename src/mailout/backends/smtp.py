"""The SMTP backend: Django's contract on mailout's pipelining client and connection pool.

Reuse rules are Django's: ``send_messages()`` on a closed backend opens connections and closes
them afterwards; after ``open()`` they stay open for the next call until ``close()``. Security
defaults differ from Django where Django is unsafe: certificates are verified, ``use_tls``
means STARTTLS is required (never a silent downgrade), AUTH is refused over plain text to a
non-loopback host, and timeouts are on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import threading
from collections.abc import Sequence
from email.headerregistry import Address as StdAddress
from typing import TYPE_CHECKING, Any

from mailout.address import parse_address
from mailout.backends._batch import Batch, Flag, Later, with_8bit
from mailout.backends.base import BaseEmailBackend, checked_messages
from mailout.conf import DEFAULTS, settings
from mailout.exceptions import ImproperlyConfigured, InvalidAddressError, InvalidMailer, SMTPError
from mailout.smtp import DATA_DONE_TIMEOUT, AsyncSMTPClient, Envelope, SMTPClient
from mailout.smtp.pool import AsyncSMTPPool, Outcome, PoolOptions, SMTPPool
from mailout.utils import DNS_NAME
from mailout.wire import Context, check, prepare, render

if TYPE_CHECKING:
    from mailout.message import EmailMessage

__all__ = ["EmailBackend", "envelope_of"]

log = logging.getLogger("mailout.smtp")

# A batch of any size is checked whole first (``wire.prepare``: every address parsed, every
# header field written), then its bodies are encoded and handed to the pool a slice at a time
# (``_batch.SLICE``) while the pool's connections send what came before; memory holds the
# slices in flight (at most pool.MAX_AHEAD messages), not a second copy of every message.
# With a subclass's own steps (_envelope, _serialize, _check): the messages rendered before
# anything is sent (rendering checks them; the rest are checked with _check).
CHUNK = 1000


class EmailBackend(BaseEmailBackend):
    """Send over SMTP. Options default to the ``EMAIL_*`` settings, read when it is created.

    After each ``send_messages()``, ``results`` holds one entry per message sent: a
    ``SendResult`` (with the recipients the server ``refused``, if any) or the ``SMTPError``
    that stopped it -- ``DeliveryUnknownError`` for a message sent whole whose final reply was
    lost, which is never sent again and is counted as not sent.

    ``data_done_timeout`` (mailout's own, default 600 s as RFC 5321 §4.5.3.2.6 asks) bounds the
    wait for the reply to a message's end of data; ``timeout`` bounds everything else.
    """

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
        pool_size: int | None = None,
        data_done_timeout: float | None = DATA_DONE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        self.allow_insecure_auth = allow_insecure_auth
        self.data_done_timeout = data_done_timeout
        if self.alias is not None:
            # Built from MAILERS: its OPTIONS are the whole configuration, EMAIL_* are not read.
            if host is None:
                raise InvalidMailer("OPTIONS must define 'host'.", alias=self.alias)
            self.host = host
            self.username = username
            self._password = password
            self.use_tls = bool(use_tls)
            self.use_ssl = bool(use_ssl)
            if self.use_tls and self.use_ssl:
                raise InvalidMailer(
                    "The 'use_ssl' and 'use_tls' OPTIONS are incompatible. Set at most one of "
                    "them to True.",
                    alias=self.alias,
                )
            # RFC 8314 §3.3 implicit TLS on 465; RFC 6409 submission (STARTTLS) on 587.
            self.port = port if port is not None else 465 if use_ssl else 587 if use_tls else 25
            # mailout's defaults, not Django's None: a dead server must not hang a worker.
            self.timeout = DEFAULTS["EMAIL_TIMEOUT"] if timeout is None else timeout
            self.ssl_keyfile = ssl_keyfile
            self.ssl_certfile = ssl_certfile
            self.ssl_cafile = ssl_cafile
            size = DEFAULTS["EMAIL_POOL_SIZE"] if pool_size is None else pool_size
        else:
            self.host = host if host is not None else settings.EMAIL_HOST
            self.port = port if port is not None else settings.EMAIL_PORT
            self.username = settings.EMAIL_HOST_USER if username is None else username
            self._password = settings.EMAIL_HOST_PASSWORD if password is None else password
            self.use_tls = settings.EMAIL_USE_TLS if use_tls is None else bool(use_tls)
            self.use_ssl = settings.EMAIL_USE_SSL if use_ssl is None else bool(use_ssl)
            self.timeout = settings.EMAIL_TIMEOUT if timeout is None else timeout
            self.ssl_keyfile = settings.EMAIL_SSL_KEYFILE if ssl_keyfile is None else ssl_keyfile
            self.ssl_certfile = (
                settings.EMAIL_SSL_CERTFILE if ssl_certfile is None else ssl_certfile
            )
            self.ssl_cafile = settings.EMAIL_SSL_CAFILE if ssl_cafile is None else ssl_cafile
            if self.use_tls and self.use_ssl:
                raise ImproperlyConfigured(
                    "EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set one of "
                    "those settings to True."
                )
            size = settings.EMAIL_POOL_SIZE if pool_size is None else pool_size
        self.pool_options = PoolOptions(size=size)
        self.connection: SMTPPool | None = None
        self.aconnection: AsyncSMTPPool | None = None
        self.results: list[Outcome] = []
        self._lock = threading.RLock()
        self._deferred = Flag()  # open() from send_messages(): connect in the pool's workers

    def __repr__(self) -> str:  # never the password
        return f"<smtp.EmailBackend {self.host}:{self.port} user={self.username or None!r}>"

    @property
    def password(self) -> str | None:
        return self._password

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of this backend's connections (a subclass may override it).

        Certificates are verified (against ``ssl_cafile``, else the system's CAs); with
        ``ssl_certfile``/``ssl_keyfile`` the client presents that certificate.
        """
        if self.ssl_certfile or self.ssl_keyfile:
            context = ssl.SSLContext(protocol=ssl.PROTOCOL_TLS_CLIENT)  # verifies by default
            if self.ssl_cafile:
                context.load_verify_locations(cafile=self.ssl_cafile)
            else:
                context.load_default_certs()
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)  # type: ignore[arg-type]
            return context
        return ssl.create_default_context(cafile=self.ssl_cafile)

    def prep_address(self, address: object, force_ascii: bool = True) -> str:
        """The addr-spec of ``address`` for an SMTP command (Django's hook).

        Raises ``ValueError`` ("Invalid address …") for anything but one valid address, CR/LF
        included. The domain is IDNA-encoded; a non-ASCII local part is kept for SMTPUTF8,
        and refused when ``force_ascii`` (it has no ASCII form).
        """
        parsed = parse_address(address, field="address")
        if force_ascii and parsed.needs_smtputf8:
            raise InvalidAddressError(
                f"Invalid address {str(address)!r}: local-part contains non-ASCII characters "
                "(sendable only with SMTPUTF8)"
            )
        if not force_ascii:
            return StdAddress(username=parsed.local_part, domain=_unicode(parsed.domain)).addr_spec
        return parsed.addr_spec

    def _client_options(self) -> dict[str, Any]:
        return {
            "use_tls": self.use_tls,
            "use_ssl": self.use_ssl,
            "ssl_context": self.ssl_context if self.use_tls or self.use_ssl else None,
            "timeout": self.timeout,
            "data_done_timeout": self.data_done_timeout,
            "local_hostname": DNS_NAME.get_fqdn(),
            # As Django's smtp backend: AUTH only with both (a password left in the settings
            # without a user sends without AUTH; it was an error in every connection thread).
            "username": self.username if self.username and self._password else None,
            "password": self._password if self.username and self._password else None,
            "allow_insecure_auth": self.allow_insecure_auth,
        }

    def _make_client(self) -> SMTPClient:
        return SMTPClient(self.host, self.port, **self._client_options())

    def _make_async_client(self) -> AsyncSMTPClient:
        return AsyncSMTPClient(self.host, self.port, **self._client_options())

    # -- sync ------------------------------------------------------------------------------

    def open(self) -> bool | None:
        """Connect (and log in); True if this call opened it, False if it was already open.

        Called by ``send_messages()`` on a closed backend, it connects nothing itself: the
        pool's connections are made by its workers, side by side, while the messages are being
        encoded (a connection error then comes back as the messages' outcome, and is raised
        unless ``fail_silently``).
        """
        with self._lock:
            if self.connection is not None:
                return False
            pool = SMTPPool(self._make_client, self.pool_options)
            if not self._deferred.active:
                try:
                    pool.open()
                except SMTPError:
                    pool.close()
                    if self.fail_silently:
                        return None
                    raise
            pool.timeout = self.timeout
            self.connection = pool
            return True

    def close(self) -> None:
        with self._lock:
            pool, self.connection = self.connection, None
            if pool is not None:
                pool.close()

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        batch = self._prepare_batch([m for m in checked_messages(email_messages) if m.recipients()])
        if not batch:
            return 0
        with self._lock:
            with self._deferred:
                opened = self.open()
            if opened is None or self.connection is None:
                return 0  # open() failed silently
            try:
                return self._report(self.connection.send_stream(len(batch), batch.slices()))
            finally:
                if opened:
                    self.close()

    # -- async -----------------------------------------------------------------------------

    async def aopen(self) -> bool | None:
        return await self._aopen(connect=True)

    async def _aopen(self, *, connect: bool) -> bool | None:
        if self.aconnection is not None:
            return False
        pool = AsyncSMTPPool(self._make_async_client, self.pool_options)
        if connect:
            try:
                await pool.open()
            except SMTPError:
                await pool.aclose()
                if self.fail_silently:
                    return None
                raise
        pool.timeout = self.timeout
        self.aconnection = pool
        return True

    async def aclose(self) -> None:
        pool, self.aconnection = self.aconnection, None
        if pool is not None:
            await pool.aclose()

    async def asend_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        messages = [m for m in checked_messages(email_messages) if m.recipients()]
        # Checking and encoding are CPU work: done in a thread, off the event loop.
        batch = await asyncio.to_thread(self._prepare_batch, messages)
        if not batch:
            return 0
        # The pool's tasks connect while the first bodies are encoded.
        opened = await self._aopen(connect=False)
        if opened is None or self.aconnection is None:
            return 0  # aopen() failed silently
        try:
            return self._report(await self.aconnection.send_stream(len(batch), batch.aslices()))
        finally:
            if opened:
                await self.aclose()

    # -- from messages to (envelope, bytes) -------------------------------------------------

    def _prepare_batch(self, messages: Sequence[EmailMessage]) -> Batch:
        """Before anything is sent (or connected): every message checked, with its envelope.

        Bad input in any message of a batch sends none of it. mailout's own steps check a
        message whole and write its header fields in one pass (``wire.prepare``); the bodies
        are encoded later, a slice at a time, as the pool sends. A subclass's own steps
        (``_envelope``, ``_serialize``, ``_check``) are used as they always were: every
        envelope, the first CHUNK messages rendered (which checks them), the rest checked.
        """
        cls = type(self)
        if (cls._envelope, cls._serialize, cls._check) == _OWN_STEPS:
            context = Context.read()
            return Batch([prepare(message, context) for message in messages])
        envelopes = [self._envelope(message) for message in messages]
        first = self._render(messages[:CHUNK], envelopes)
        for message in messages[CHUNK:]:
            self._check(message)
        rest = [
            Later(self._serialize, message, envelope)
            for message, envelope in zip(messages[CHUNK:], envelopes[CHUNK:], strict=True)
        ]
        return Batch([*first, *rest])

    def _render(
        self, messages: Sequence[EmailMessage], envelopes: Sequence[Envelope]
    ) -> list[tuple[Envelope, bytes]]:
        """The bytes of checked messages, each with its envelope (a subclass's own steps)."""
        return [
            with_8bit(e, self._serialize(m, e)) for m, e in zip(messages, envelopes, strict=False)
        ]

    # The three steps a subclass may replace (mailout.django's backend does, for Django's
    # message objects and the staging redirect).

    def _envelope(self, message: EmailMessage) -> Envelope:
        """The SMTP envelope of ``message``: its sender and every recipient, checked."""
        return envelope_of(message)

    def _serialize(self, message: EmailMessage, envelope: Envelope) -> bytes:
        """The bytes of ``message``, in SMTPUTF8 mode when its envelope needs it."""
        return render(message, smtputf8=envelope.smtputf8)

    def _check(self, message: EmailMessage) -> None:
        """Raise what ``_serialize()`` would raise for ``message``, without building its body."""
        check(message)

    def _report(self, outcomes: list[Outcome]) -> int:
        """Count what was accepted; raise the first failure unless failing silently."""
        self.results = outcomes
        errors = [o for o in outcomes if isinstance(o, SMTPError)]
        for outcome in outcomes:
            if not isinstance(outcome, SMTPError) and outcome.refused:
                log.warning(
                    "server refused %d recipient(s): %s",
                    len(outcome.refused),
                    ", ".join(f"{addr} ({reply})" for addr, reply in outcome.refused.items()),
                )
        if errors and not self.fail_silently:
            raise errors[0]
        return len(outcomes) - len(errors)


def _unicode(domain: str) -> str:
    """An IDNA-encoded domain in Unicode again (as given, where a label does not decode)."""
    try:
        return domain.encode("ascii").decode("idna")
    except UnicodeError:
        return domain


def envelope_of(message: EmailMessage) -> Envelope:
    """The SMTP envelope of a mailout message: sender and recipients as addr-specs."""
    # needs_smtputf8() first: it parses every address under its own field name (to, cc, …),
    # so that bad input is reported the way the message itself would report it.
    smtputf8 = message.needs_smtputf8()
    sender = parse_address(message.from_email, field="from_email").addr_spec
    recipients = tuple(parse_address(r, field="recipients").addr_spec for r in message.recipients())
    return Envelope(sender, recipients, smtputf8=smtputf8)


# mailout's own steps: a backend that keeps them takes the one-pass path (wire.prepare).
_OWN_STEPS = (EmailBackend._envelope, EmailBackend._serialize, EmailBackend._check)
