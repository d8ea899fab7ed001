"""AUTH exchanges (RFC 4954) as generators, so the async and the sync driver share them.

A flow yields the next command to send and is sent back the reply to it; it returns when the
server accepted the credentials and raises :class:`AuthenticationError` when it refused them::

    flow = auth_plain(username, password)
    command = next(flow)
    while True:
        reply = roundtrip(command)
        try:
            command = flow.send(reply)
        except StopIteration:
            break
"""

from __future__ import annotations

import base64
from collections.abc import Generator

from mailout.exceptions import AuthenticationError, BadHeaderError, SMTPProtocolError
from mailout.smtp._protocol.commands import Auth, AuthResponse, Command
from mailout.smtp._protocol.reply import Reply

__all__ = ["SUPPORTED_MECHANISMS", "AuthFlow", "auth_login", "auth_plain", "auth_xoauth2"]

AuthFlow = Generator[Command, Reply, None]

# Preference order when the caller lets the server's list decide.
SUPPORTED_MECHANISMS = ("PLAIN", "LOGIN")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _refused(reply: Reply) -> AuthenticationError:
    # The reply text comes from the server; our command (holding credentials) is never quoted.
    return AuthenticationError(reply, f"authentication refused: {reply}")


def _no_nul(username: str, password: str) -> None:
    # RFC 4616 §2: NUL separates the fields of PLAIN; a NUL in a value would forge another field.
    if "\0" in username:
        raise BadHeaderError("username contains NUL")
    if "\0" in password:
        raise BadHeaderError("password contains NUL")


def _finish(reply: Reply) -> None:
    if reply.code == 235:  # RFC 4954 §6: 235 2.7.0 Authentication Succeeded
        return
    if reply.is_intermediate:
        raise SMTPProtocolError(f"unexpected challenge at the end of AUTH: {reply.code}")
    raise _refused(reply)


def auth_plain(username: str, password: str) -> AuthFlow:
    """AUTH PLAIN with the credentials as initial response (RFC 4616, RFC 4954 §4)."""
    _no_nul(username, password)
    secret = _b64(f"\0{username}\0{password}")
    reply = yield Auth("PLAIN", secret)
    if reply.code == 334:  # the server ignored the initial response and asks for it
        reply = yield AuthResponse(secret)
    _finish(reply)


def auth_login(username: str, password: str) -> AuthFlow:
    """AUTH LOGIN (draft-murchison-sasl-login): username then password, each after a 334."""
    _no_nul(username, password)
    reply = yield Auth("LOGIN")
    if reply.code != 334:
        raise _refused(reply)
    reply = yield AuthResponse(_b64(username))
    if reply.code != 334:
        raise _refused(reply)
    reply = yield AuthResponse(_b64(password))
    _finish(reply)


def auth_xoauth2(username: str, token: str) -> AuthFlow:
    """XOAUTH2 (Google/Microsoft): a bearer token as initial response."""
    _no_nul(username, token)
    if "\x01" in username or "\x01" in token:
        raise BadHeaderError("username or token contains ^A")
    reply = yield Auth("XOAUTH2", _b64(f"user={username}\x01auth=Bearer {token}\x01\x01"))
    if reply.code == 334:
        # The 334 carries a JSON error; the client must answer with an empty line and the
        # server then sends the final failure reply.
        reply = yield AuthResponse("")
    _finish(reply)
