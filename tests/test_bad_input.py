"""Bad input: each case is a clear, typed error naming the field, and nothing is half-sent.

Every case that goes as far as a backend is sent through the SMTP backend to a real aiosmtpd
server and through locmem; afterwards the server has received nothing (and, where the error is
found before connecting, was never even connected to) and ``mailout.outbox`` is empty.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import mailout
from mailout import EmailMessage, ImproperlyConfigured, MailoutError, MessageTypeError
from mailout.exceptions import AttachmentNotFoundError, InvalidAddressError, InvalidMessageError
from tests.conftest import SMTPServer

SMTP_BACKEND = "mailout.backends.smtp.EmailBackend"
LOCMEM_BACKEND = "mailout.backends.locmem.EmailBackend"
FILE_BACKEND = "mailout.backends.filebased.EmailBackend"
INVALID_ADDRESSES = ["not an address", "a@", "a@b@c", "<>", "x <a@b> y", "", "@example.com"]


def good(**kwargs: Any) -> EmailMessage:
    fields: dict[str, Any] = {
        "subject": "Hello",
        "body": "Body.",
        "from_email": "from@example.com",
        "to": ["to@example.com"],
    }
    fields.update(kwargs)
    return EmailMessage(**fields)


def smtp(server: SMTPServer) -> Any:
    return mailout.get_connection(SMTP_BACKEND, host=server.host, port=server.port)


def assert_nothing_sent(server: SMTPServer) -> None:
    assert server.received == []
    assert server.connections == 0, "connected to the server before finding the bad input"
    assert mailout.outbox == []


def assert_refused_everywhere(
    server: SMTPServer, messages: list[EmailMessage], error: type[Exception], field: str
) -> None:
    """Both backends refuse ``messages`` with ``error`` naming ``field``; nothing is sent."""
    for connection in (smtp(server), mailout.get_connection(LOCMEM_BACKEND)):
        with pytest.raises(error) as caught:
            connection.send_messages(messages)
        assert field in str(caught.value)
        assert isinstance(caught.value, MailoutError)
    assert_nothing_sent(server)


# -- recipient fields of the wrong type --------------------------------------------------------


@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to"])
def test_recipient_field_as_a_string(field: str) -> None:
    with pytest.raises(MessageTypeError, match=f'"{field}" argument must be a list or tuple') as c:
        good(**{field: "a@example.com"})
    assert isinstance(c.value, TypeError)
    assert "string" in str(c.value)


@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to"])
def test_recipient_field_set_to_a_string_after_construction(
    smtp_server: SMTPServer, field: str
) -> None:
    message = good()
    setattr(message, field, "a@example.com")
    with pytest.raises(MessageTypeError, match=field):
        message.message()
    with pytest.raises(MessageTypeError, match=field):
        smtp(smtp_server).send_messages([message])
    assert smtp_server.received == []


@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to"])
@pytest.mark.parametrize("value", [{"a@example.com"}, 42, b"a@example.com"])
def test_recipient_field_of_another_type(field: str, value: object) -> None:
    with pytest.raises(MessageTypeError, match=field):
        good(**{field: value})


def test_send_mail_recipient_list_as_a_string(smtp_server: SMTPServer) -> None:
    mailout.configure({"EMAIL_HOST": smtp_server.host, "EMAIL_PORT": smtp_server.port})
    with pytest.raises(MessageTypeError, match="to"):
        mailout.send_mail("s", "m", "from@example.com", "to@example.com")  # type: ignore[arg-type]
    assert_nothing_sent(smtp_server)


@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to"])
@pytest.mark.parametrize("value", [42, b"a@example.com", ["a@example.com"]])
def test_recipient_entry_of_the_wrong_type(smtp_server: SMTPServer, field: str, value: object):
    extra = {"to": ["to@example.com"]} if field != "to" else {}
    message = good(**{field: [value], **extra})
    assert_refused_everywhere(smtp_server, [message], MessageTypeError, field)


def test_reply_to_entry_none(smtp_server: SMTPServer) -> None:
    # None in to/cc/bcc is skipped as Django skips empty recipients; reply_to has no such rule.
    assert_refused_everywhere(smtp_server, [good(reply_to=[None])], MessageTypeError, "reply_to")


@pytest.mark.parametrize(
    ("field", "value"),
    [("subject", 42), ("subject", b"bytes"), ("from_email", 42), ("body", b"bytes")],
)
def test_scalar_field_of_the_wrong_type(smtp_server: SMTPServer, field: str, value: Any) -> None:
    assert_refused_everywhere(smtp_server, [good(**{field: value})], MessageTypeError, field)


def test_headers_not_a_mapping() -> None:
    with pytest.raises(MessageTypeError, match="headers"):
        good(headers=[("X-A", "1")])


# -- empty recipient lists ---------------------------------------------------------------------


@pytest.mark.parametrize("to", [[], (), None, [""]])
def test_no_recipients_sends_nothing(smtp_server: SMTPServer, to: Any) -> None:
    mailout.configure({"EMAIL_HOST": smtp_server.host, "EMAIL_PORT": smtp_server.port})
    message = good(to=to)
    assert message.send() == 0
    assert smtp(smtp_server).send_messages([message]) == 0
    assert mailout.send_mail("s", "m", "from@example.com", list(to or [])) == 0
    assert_nothing_sent(smtp_server)


def test_empty_recipient_among_real_ones_is_an_error(smtp_server: SMTPServer) -> None:
    message = good(to=["", "to@example.com"])
    assert_refused_everywhere(smtp_server, [message], InvalidAddressError, "to")


# -- invalid addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "address"),
    [
        (field, address)
        for field in ("to", "cc", "bcc", "reply_to")
        for address in INVALID_ADDRESSES
        # An empty recipient alone is skipped, as in Django (see the tests above).
        if address or field == "reply_to"
    ],
)
def test_invalid_address_names_the_field(smtp_server: SMTPServer, field: str, address: str):
    extra = {"to": ["to@example.com"]} if field != "to" else {}
    message = good(**{field: [address], **extra})
    assert_refused_everywhere(smtp_server, [message], InvalidAddressError, field)


@pytest.mark.parametrize("address", [a for a in INVALID_ADDRESSES if a])
def test_invalid_from_email_names_the_field(smtp_server: SMTPServer, address: str) -> None:
    message = good(from_email=address)
    assert_refused_everywhere(smtp_server, [message], InvalidAddressError, "from_email")


@pytest.mark.parametrize("address", INVALID_ADDRESSES)
def test_invalid_address_is_a_value_error(address: str) -> None:
    with pytest.raises(ValueError, match="to"):
        good(to=[address, "ok@example.com"]).message()


def test_invalid_address_in_a_name_address_pair(smtp_server: SMTPServer) -> None:
    message = good(cc=[("Ann", "not an address")])
    assert_refused_everywhere(smtp_server, [message], InvalidAddressError, "cc")


def test_send_mail_invalid_recipient(smtp_server: SMTPServer) -> None:
    mailout.configure({"EMAIL_HOST": smtp_server.host, "EMAIL_PORT": smtp_server.port})
    with pytest.raises(InvalidAddressError, match="to"):
        mailout.send_mail("s", "m", "from@example.com", ["ok@example.com", "a@b@c"])
    assert_nothing_sent(smtp_server)


# -- attachments -------------------------------------------------------------------------------


def test_missing_attachment_file(tmp_path: Path) -> None:
    missing = tmp_path / "images" / "weather_map.png"
    message = good()
    with pytest.raises(AttachmentNotFoundError) as caught:
        message.attach_file(missing)
    assert isinstance(caught.value, FileNotFoundError)
    assert isinstance(caught.value, MailoutError)
    assert str(missing) in str(caught.value)
    assert "attach_file" in str(caught.value)
    assert message.attachments == []


def test_attachment_path_is_a_directory(tmp_path: Path) -> None:
    message = good()
    with pytest.raises(InvalidMessageError, match="directory"):
        message.attach_file(tmp_path)
    assert message.attachments == []


@pytest.mark.parametrize("mimetype", ["image", "", "/png", "image/"])
def test_attachment_mimetype_without_subtype(mimetype: str) -> None:
    message = good()
    with pytest.raises(InvalidMessageError, match="mimetype"):
        message.attach("design.png", b"data", mimetype)
    assert message.attachments == []


def test_attachment_content_missing_or_of_the_wrong_type() -> None:
    message = good()
    with pytest.raises(InvalidMessageError, match="content must be provided"):
        message.attach("design.png")
    with pytest.raises(MessageTypeError, match="content"):
        message.attach("design.png", 42, "image/png")  # type: ignore[arg-type]
    assert message.attachments == []


def test_attachment_filename_of_the_wrong_type() -> None:
    with pytest.raises(MessageTypeError, match="filename"):
        good().attach(42, b"data", "image/png")  # type: ignore[arg-type]


# -- EMAIL_FILE_PATH ---------------------------------------------------------------------------


def test_email_file_path_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    mailout.configure({"EMAIL_BACKEND": FILE_BACKEND, "EMAIL_FILE_PATH": str(not_a_dir)})
    with pytest.raises(ImproperlyConfigured, match="EMAIL_FILE_PATH") as caught:
        mailout.get_connection()
    assert "not a directory" in str(caught.value)
    with pytest.raises(ImproperlyConfigured, match="EMAIL_FILE_PATH"):
        mailout.send_mail("s", "m", "from@example.com", ["to@example.com"])
    assert not_a_dir.read_text() == "x"


def test_file_path_argument_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    with pytest.raises(ImproperlyConfigured, match="file_path"):
        mailout.get_connection(FILE_BACKEND, file_path=not_a_dir)


def test_email_file_path_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    mailout.configure({"EMAIL_BACKEND": FILE_BACKEND, "EMAIL_FILE_PATH": tmp_path / "file.txt/d"})
    with pytest.raises(ImproperlyConfigured, match="EMAIL_FILE_PATH"):
        mailout.get_connection()


def test_email_file_path_missing() -> None:
    mailout.configure({"EMAIL_BACKEND": FILE_BACKEND})
    with pytest.raises(ImproperlyConfigured, match="EMAIL_FILE_PATH"):
        mailout.get_connection()


def test_email_file_path_not_writable(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            mailout.configure({"EMAIL_BACKEND": FILE_BACKEND, "EMAIL_FILE_PATH": str(locked)})
            with pytest.raises(ImproperlyConfigured, match="EMAIL_FILE_PATH") as caught:
                mailout.get_connection()
            assert "not writable" in str(caught.value)
        finally:
            locked.chmod(0o700)
        return
    # Root may write anywhere, so the check runs in a child process that lost the capability to
    # override permissions (setpriv, util-linux): root then meets the 0500 mode (CI runs as root).
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    script = (
        "import sys, mailout\n"
        f"mailout.configure({{'EMAIL_BACKEND': {FILE_BACKEND!r},"
        " 'EMAIL_FILE_PATH': sys.argv[1]})\n"
        "try:\n"
        "    mailout.get_connection()\n"
        "except mailout.ImproperlyConfigured as exc:\n"
        "    sys.exit(print(exc))\n"
        "sys.exit('no error')\n"
    )
    bounded = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
    result = subprocess.run(
        [*bounded, sys.executable, "-c", script, str(locked)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "EMAIL_FILE_PATH" in result.stdout
    assert "not writable" in result.stdout


def test_email_file_path_of_the_wrong_type() -> None:
    mailout.configure({"EMAIL_BACKEND": FILE_BACKEND, "EMAIL_FILE_PATH": 42})
    with pytest.raises(ImproperlyConfigured, match="EMAIL_FILE_PATH"):
        mailout.get_connection()


# -- bad settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["abc", "", 0, 70000, -1, 25.5, True, None])
def test_bad_email_port(smtp_server: SMTPServer, port: object) -> None:
    mailout.configure({"EMAIL_HOST": smtp_server.host, "EMAIL_PORT": port})
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PORT") as caught:
        mailout.get_connection()
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PORT"):
        mailout.send_mail("s", "m", "from@example.com", ["to@example.com"])
    assert_nothing_sent(smtp_server)


def test_bad_email_port_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_PORT", "abc")
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PORT"):
        mailout.get_connection()


def test_email_use_tls_and_ssl_both_true(smtp_server: SMTPServer) -> None:
    mailout.configure(
        {
            "EMAIL_HOST": smtp_server.host,
            "EMAIL_PORT": smtp_server.port,
            "EMAIL_USE_TLS": True,
            "EMAIL_USE_SSL": True,
        }
    )
    with pytest.raises(ImproperlyConfigured) as caught:
        mailout.get_connection()
    assert "EMAIL_USE_TLS" in str(caught.value)
    assert "EMAIL_USE_SSL" in str(caught.value)
    with pytest.raises(ImproperlyConfigured):
        mailout.send_mail("s", "m", "from@example.com", ["to@example.com"])
    assert_nothing_sent(smtp_server)


def test_use_tls_and_use_ssl_arguments_both_true() -> None:
    with pytest.raises(ImproperlyConfigured, match="EMAIL_USE_TLS"):
        mailout.get_connection(SMTP_BACKEND, use_tls=True, use_ssl=True)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("EMAIL_USE_TLS", "maybe"),
        ("EMAIL_USE_SSL", 2),
        ("EMAIL_TIMEOUT", "soon"),
        ("EMAIL_TIMEOUT", -1),
        ("EMAIL_HOST", 42),
        ("ADMINS", "admin@example.com"),
        ("ADMINS", [("Admin",)]),
        ("MANAGERS", 42),
    ],
)
def test_bad_setting_named_in_the_error(setting: str, value: object) -> None:
    mailout.configure({"ADMINS": ["a@example.com"], setting: value})
    if setting in ("ADMINS", "MANAGERS"):
        action = getattr(mailout, f"mail_{setting.lower()}")
        with pytest.raises(ImproperlyConfigured, match=setting):
            action("s", "m")
    else:
        with pytest.raises(ImproperlyConfigured, match=setting):
            mailout.get_connection()


@pytest.mark.parametrize(
    "path",
    [
        "mailout.backends.nope.EmailBackend",
        "mailout.backends.smtp.NoSuchBackend",
        "nodots",
        "no_such_package_xyz.EmailBackend",
        "django.core.mail.backends.nope.EmailBackend",
    ],
)
def test_unknown_email_backend(smtp_server: SMTPServer, path: str) -> None:
    mailout.configure(
        {"EMAIL_BACKEND": path, "EMAIL_HOST": smtp_server.host, "EMAIL_PORT": smtp_server.port}
    )
    with pytest.raises(ImproperlyConfigured, match="EMAIL_BACKEND") as caught:
        mailout.get_connection()
    assert repr(path.rpartition(".")[0] or path) in str(caught.value) or path in str(caught.value)
    with pytest.raises(ImproperlyConfigured, match="EMAIL_BACKEND"):
        mailout.send_mail("s", "m", "from@example.com", ["to@example.com"])
    assert_nothing_sent(smtp_server)


def test_unknown_backend_argument_names_backend() -> None:
    with pytest.raises(ImproperlyConfigured, match="backend"):
        mailout.get_connection("mailout.backends.nope.EmailBackend")


# -- send_mass_mail datatuple of the wrong shape -----------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        ("s", "m", "from@example.com"),
        ("s", "m", "from@example.com", ["to@example.com"], "extra"),
        "s, m, from@example.com, to@example.com",
        None,
        {"subject": "s"},
    ],
)
def test_send_mass_mail_wrong_shape(smtp_server: SMTPServer, bad: object) -> None:
    mailout.configure({"EMAIL_HOST": smtp_server.host, "EMAIL_PORT": smtp_server.port})
    datatuple = [("ok", "m", "from@example.com", ["to@example.com"]), bad]
    with pytest.raises(MessageTypeError, match=r"datatuple\[1\]"):
        mailout.send_mass_mail(datatuple)  # type: ignore[arg-type]
    assert_nothing_sent(smtp_server)


def test_send_mass_mail_recipient_list_as_a_string(smtp_server: SMTPServer) -> None:
    mailout.configure({"EMAIL_HOST": smtp_server.host, "EMAIL_PORT": smtp_server.port})
    datatuple = [
        ("ok", "m", "from@example.com", ["to@example.com"]),
        ("bad", "m", "from@example.com", "to@example.com"),
    ]
    with pytest.raises(MessageTypeError, match="to"):
        mailout.send_mass_mail(datatuple)  # type: ignore[arg-type]
    assert_nothing_sent(smtp_server)


# -- a batch with one bad message sends nothing ------------------------------------------------


BAD_THIRD = {
    "invalid address": lambda: good(to=["a@b@c"]),
    "newline in subject": lambda: good(subject="Hi\nBcc: evil@attacker.example"),
    "recipient as a string": lambda: _with_field("cc", "cc@example.com"),
    "bad extra header name": lambda: good(headers={"X Bad": "v"}),
    "invalid from_email": lambda: good(from_email="not an address"),
}


def _with_field(field: str, value: Any) -> EmailMessage:
    message = good()
    setattr(message, field, value)
    return message


@pytest.mark.parametrize("bad", list(BAD_THIRD))
def test_batch_with_a_bad_third_message_sends_nothing(smtp_server: SMTPServer, bad: str) -> None:
    batch = [good(subject="first"), good(subject="second"), BAD_THIRD[bad]()]
    with pytest.raises(MailoutError):
        smtp(smtp_server).send_messages(batch)
    with pytest.raises(MailoutError):
        mailout.get_connection(LOCMEM_BACKEND).send_messages(batch)
    assert_nothing_sent(smtp_server)


@pytest.mark.parametrize("bad", list(BAD_THIRD))
def test_batch_with_a_bad_third_message_on_an_open_connection(
    smtp_server: SMTPServer, bad: str
) -> None:
    connection = smtp(smtp_server)
    with connection:
        with pytest.raises(MailoutError):
            connection.send_messages([good(subject="1"), good(subject="2"), BAD_THIRD[bad]()])
        assert smtp_server.received == []
        # The connection is still usable afterwards.
        assert connection.send_messages([good(subject="after")]) == 1
    assert [r.message["Subject"] for r in smtp_server.received] == ["after"]


def test_send_mass_mail_with_a_bad_third_message_sends_nothing(smtp_server: SMTPServer) -> None:
    mailout.configure({"EMAIL_HOST": smtp_server.host, "EMAIL_PORT": smtp_server.port})
    datatuple = [
        ("one", "m", "from@example.com", ["to@example.com"]),
        ("two", "m", "from@example.com", ["to@example.com"]),
        ("three", "m", "from@example.com", ["not an address"]),
    ]
    with pytest.raises(InvalidAddressError, match="to"):
        mailout.send_mass_mail(datatuple)
    assert_nothing_sent(smtp_server)


@pytest.mark.parametrize("backend", ["console", "filebased"])
def test_batch_with_a_bad_third_message_writes_nothing(
    tmp_path: Path, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mail"
    kwargs = {"file_path": folder} if backend == "filebased" else {}
    connection = mailout.get_connection(f"mailout.backends.{backend}.EmailBackend", **kwargs)
    with pytest.raises(InvalidAddressError):
        connection.send_messages([good(), good(), good(to=["a@b@c"])])
    assert capsys.readouterr().out == ""
    assert not folder.exists() or [p for p in folder.iterdir() if p.stat().st_size] == []


def test_fail_silently_does_not_hide_bad_input(smtp_server: SMTPServer) -> None:
    """fail_silently is about delivery problems; a bad message is still the caller's bug."""
    connection = mailout.get_connection(
        SMTP_BACKEND, fail_silently=True, host=smtp_server.host, port=smtp_server.port
    )
    with pytest.raises(InvalidAddressError, match="to"):
        connection.send_messages([good(), good(to=["a@b@c"])])
    assert_nothing_sent(smtp_server)
