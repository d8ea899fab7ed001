"""The sans-I/O SMTP client core: commands, reply parser, extensions, framing, state machine."""

from __future__ import annotations

from mailout.smtp._protocol.auth import AuthFlow, auth_login, auth_plain, auth_xoauth2
from mailout.smtp._protocol.commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    DataContent,
    Ehlo,
    Helo,
    MailFrom,
    Noop,
    Quit,
    RcptTo,
    Rset,
    StartTLS,
)
from mailout.smtp._protocol.connection import (
    NEED_DATA,
    Connection,
    LocalProtocolError,
    Need,
    State,
)
from mailout.smtp._protocol.content import encode_bdat, encode_data, normalize_newlines
from mailout.smtp._protocol.extensions import Extensions
from mailout.smtp._protocol.parser import ReplyParser
from mailout.smtp._protocol.reply import Reply

__all__ = [
    "NEED_DATA",
    "Auth",
    "AuthFlow",
    "AuthResponse",
    "Bdat",
    "Command",
    "Connection",
    "Data",
    "DataContent",
    "Ehlo",
    "Extensions",
    "Helo",
    "LocalProtocolError",
    "MailFrom",
    "Need",
    "Noop",
    "Quit",
    "RcptTo",
    "Reply",
    "ReplyParser",
    "Rset",
    "StartTLS",
    "State",
    "auth_login",
    "auth_plain",
    "auth_xoauth2",
    "encode_bdat",
    "encode_data",
    "normalize_newlines",
]
