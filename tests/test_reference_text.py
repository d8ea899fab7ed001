"""Every example of the reference text (/work/shared/spec/sending-email.txt), doing what it says.

The reference page lost its email addresses; they are filled in here with example.com ones.
Mail goes to a real aiosmtpd server on loopback unless the text is about another backend.
"""

from __future__ import annotations

import email
import email.policy
import io
import smtplib
from collections.abc import Sequence
from email.message import Message
from email.mime.base import MIMEBase
from pathlib import Path
from typing import Any

import pytest

import mailout
import mailout.backends.console
import mailout.backends.dummy
import mailout.backends.filebased
import mailout.backends.locmem
import mailout.backends.smtp
from mailout import BadHeaderError, EmailMessage, EmailMultiAlternatives
from mailout.backends.base import BaseEmailBackend
from tests.conftest import PASSWORD, USER, SMTPServer, free_port

BACKENDS = {
    "smtp": mailout.backends.smtp.EmailBackend,
    "console": mailout.backends.console.EmailBackend,
    "filebased": mailout.backends.filebased.EmailBackend,
    "locmem": mailout.backends.locmem.EmailBackend,
    "dummy": mailout.backends.dummy.EmailBackend,
}


def use_server(server: SMTPServer, **extra: Any) -> None:
    """Settings pointing the default SMTP backend at ``server``, as the text's examples assume."""
    mailout.configure({"EMAIL_HOST": server.host, "EMAIL_PORT": server.port, **extra})


def _parse(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=email.policy.default)


# -- Quick example -----------------------------------------------------------------------------


def test_quick_example(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    sent = mailout.send_mail(
        "Subject here",
        "Here is the message.",
        "from@example.com",
        ["to@example.com"],
        fail_silently=False,
    )
    assert sent == 1
    [received] = smtp_server.received
    assert received.mail_from == "from@example.com"
    assert received.rcpt_tos == ["to@example.com"]
    message = received.message
    assert message["Subject"] == "Subject here"
    assert message["From"] == "from@example.com"
    assert message["To"] == "to@example.com"
    assert message.get_content() == "Here is the message.\n"


def test_charset_is_default_charset(smtp_server: SMTPServer) -> None:
    use_server(smtp_server, DEFAULT_CHARSET="iso-8859-1")
    mailout.send_mail("Café", "Crème brûlée.", "from@example.com", ["to@example.com"])
    message = smtp_server.received[0].message
    assert message.get_content_charset() == "iso-8859-1"
    assert message.get_content() == "Crème brûlée.\n"
    assert message["Subject"] == "Café"


def test_auth_user_and_password_authenticate(tls_smtp_server: SMTPServer, ca_file: str) -> None:
    use_server(tls_smtp_server, EMAIL_USE_TLS=True, EMAIL_SSL_CAFILE=ca_file)
    sent = mailout.send_mail(
        "s", "m", "from@example.com", ["to@example.com"], auth_user=USER, auth_password=PASSWORD
    )
    assert sent == 1
    assert tls_smtp_server.received[0].rcpt_tos == ["to@example.com"]


def test_email_host_user_and_password_settings_authenticate(
    tls_smtp_server: SMTPServer, ca_file: str
) -> None:
    use_server(
        tls_smtp_server,
        EMAIL_USE_TLS=True,
        EMAIL_SSL_CAFILE=ca_file,
        EMAIL_HOST_USER=USER,
        EMAIL_HOST_PASSWORD=PASSWORD,
    )
    assert mailout.send_mail("s", "m", "from@example.com", ["to@example.com"]) == 1
    assert len(tls_smtp_server.received) == 1


def test_fail_silently_false_raises_smtp_exception(
    tls_smtp_server: SMTPServer, ca_file: str
) -> None:
    use_server(tls_smtp_server, EMAIL_USE_TLS=True, EMAIL_SSL_CAFILE=ca_file)
    with pytest.raises(smtplib.SMTPException):
        mailout.send_mail(
            "s", "m", "from@example.com", ["to@example.com"], auth_user=USER, auth_password="no"
        )
    assert tls_smtp_server.received == []


def test_fail_silently_true_quashes_the_error(tls_smtp_server: SMTPServer, ca_file: str) -> None:
    use_server(tls_smtp_server, EMAIL_USE_TLS=True, EMAIL_SSL_CAFILE=ca_file)
    sent = mailout.send_mail(
        "s",
        "m",
        "from@example.com",
        ["to@example.com"],
        fail_silently=True,
        auth_user=USER,
        auth_password="no",
    )
    assert sent == 0
    assert tls_smtp_server.received == []


def test_fail_silently_true_when_no_server_listens() -> None:
    mailout.configure({"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": free_port()})
    assert mailout.send_mail("s", "m", "from@example.com", ["to@example.com"], True) == 0


def test_send_mail_connection_argument_is_used(smtp_server: SMTPServer) -> None:
    connection = mailout.get_connection("mailout.backends.locmem.EmailBackend")
    use_server(smtp_server)
    mailout.send_mail("s", "m", "from@example.com", ["to@example.com"], connection=connection)
    assert smtp_server.received == []
    assert [m.subject for m in mailout.outbox] == ["s"]


# -- send_mail to two recipients; send_mass_mail -----------------------------------------------


def test_send_mail_to_two_recipients_both_in_to(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    mailout.send_mail(
        "Subject", "Message.", "from@example.com", ["john@example.com", "jane@example.com"]
    )
    [received] = smtp_server.received
    assert received.rcpt_tos == ["john@example.com", "jane@example.com"]
    assert received.message["To"] == "john@example.com, jane@example.com"


def test_send_mass_mail_two_messages_one_connection(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    message1 = (
        "Subject here",
        "Here is the message",
        "from@example.com",
        ["first@example.com", "other@example.com"],
    )
    message2 = (
        "Another Subject",
        "Here is another message",
        "from@example.com",
        ["second@test.com"],
    )
    assert mailout.send_mass_mail((message1, message2), fail_silently=False) == 2
    assert smtp_server.connections == 1
    first, second = smtp_server.received
    assert first.rcpt_tos == ["first@example.com", "other@example.com"]
    assert first.message["To"] == "first@example.com, other@example.com"
    assert first.message["Subject"] == "Subject here"
    assert second.rcpt_tos == ["second@test.com"]
    assert second.message["Subject"] == "Another Subject"


def test_send_mass_mail_each_recipient_gets_a_separate_email(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    datatuple = (
        ("Subject", "Message.", "from@example.com", ["john@example.com"]),
        ("Subject", "Message.", "from@example.com", ["jane@example.com"]),
    )
    assert mailout.send_mass_mail(datatuple) == 2
    assert [r.rcpt_tos for r in smtp_server.received] == [
        ["john@example.com"],
        ["jane@example.com"],
    ]
    assert [r.message["To"] for r in smtp_server.received] == [
        "john@example.com",
        "jane@example.com",
    ]


def test_send_mail_opens_a_connection_each_time(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    for _ in range(2):
        mailout.send_mail("s", "m", "from@example.com", ["to@example.com"])
    assert smtp_server.connections == 2


# -- mail_admins / mail_managers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "setting"),
    [(mailout.mail_admins, "ADMINS"), (mailout.mail_managers, "MANAGERS")],
)
@pytest.mark.parametrize(
    "people",
    [
        ["one@example.com", "two@example.com"],
        [("One", "one@example.com"), ("Two", "two@example.com")],
    ],
    ids=["strings", "name-address-pairs"],
)
def test_site_mail_goes_to_the_setting(
    smtp_server: SMTPServer, function: Any, setting: str, people: list[Any]
) -> None:
    use_server(smtp_server, **{setting: people, "SERVER_EMAIL": "server@example.com"})
    assert function("Broken", "Something broke.") == 1
    [received] = smtp_server.received
    assert received.mail_from == "server@example.com"
    assert received.rcpt_tos == ["one@example.com", "two@example.com"]
    assert received.message["From"] == "server@example.com"
    assert received.message["Subject"] == "[Django] Broken"


@pytest.mark.parametrize("function", [mailout.mail_admins, mailout.mail_managers])
def test_site_mail_uses_email_subject_prefix(smtp_server: SMTPServer, function: Any) -> None:
    use_server(
        smtp_server,
        ADMINS=["a@example.com"],
        MANAGERS=["a@example.com"],
        EMAIL_SUBJECT_PREFIX="[My Site] ",
    )
    function("Hello", "Body")
    assert smtp_server.received[0].message["Subject"] == "[My Site] Hello"


def test_site_mail_default_server_email(smtp_server: SMTPServer) -> None:
    use_server(smtp_server, ADMINS=["a@example.com"])
    mailout.mail_admins("s", "m")
    assert smtp_server.received[0].mail_from == "root@localhost"


@pytest.mark.parametrize("function", [mailout.mail_admins, mailout.mail_managers])
def test_site_mail_sends_nothing_when_empty(smtp_server: SMTPServer, function: Any) -> None:
    use_server(smtp_server)
    assert function("s", "m") == 0
    assert smtp_server.connections == 0
    assert smtp_server.received == []


def test_site_mail_connection_argument(smtp_server: SMTPServer) -> None:
    use_server(smtp_server, ADMINS=["a@example.com"])
    locmem = mailout.get_connection("mailout.backends.locmem.EmailBackend")
    assert mailout.mail_admins("s", "m", connection=locmem) == 1
    assert smtp_server.received == []
    assert mailout.outbox[0].to == ["a@example.com"]


# -- Preventing header injection: the contact-form view ----------------------------------------


def contact_view(post: dict[str, str]) -> str:
    """The text's example view; HttpResponse / HttpResponseRedirect stand in as strings."""
    subject = post.get("subject", "")
    message = post.get("message", "")
    from_email = post.get("from_email", "")
    if subject and message and from_email:
        try:
            mailout.send_mail(subject, message, from_email, ["admin@example.com"])
        except BadHeaderError:
            return "Invalid header found."
        return "redirect:/contact/thanks/"
    return "Make sure all fields are entered and valid."


def test_contact_view_sends(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    post = {"subject": "Hi", "message": "Hello there", "from_email": "visitor@example.com"}
    assert contact_view(post) == "redirect:/contact/thanks/"
    assert smtp_server.received[0].rcpt_tos == ["admin@example.com"]
    assert smtp_server.received[0].mail_from == "visitor@example.com"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["unix", "windows", "mac"])
@pytest.mark.parametrize("field", ["subject", "from_email"])
def test_contact_view_refuses_header_injection(
    smtp_server: SMTPServer, newline: str, field: str
) -> None:
    use_server(smtp_server)
    post = {"subject": "Hi", "message": "Hello", "from_email": "visitor@example.com"}
    post[field] += f"{newline}Bcc: victim@example.com"
    assert contact_view(post) == "Invalid header found."
    assert smtp_server.received == []


def test_recipient_list_newline_raises_bad_header_error(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    with pytest.raises(BadHeaderError) as caught:
        mailout.send_mail("s", "m", "a@example.com", ["to@example.com\nBcc: v@example.com"])
    assert isinstance(caught.value, ValueError)
    assert smtp_server.received == []


def test_contact_view_missing_field(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    assert contact_view({"subject": "Hi"}) == "Make sure all fields are entered and valid."
    assert smtp_server.connections == 0


def test_headers_at_the_start_of_the_message_are_body_text(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    body = "To: other@example.com\nSubject: spoofed\n\nHello"
    mailout.send_mail("Real", body, "from@example.com", ["to@example.com"])
    message = smtp_server.received[0].message
    assert message["Subject"] == "Real"
    assert message["To"] == "to@example.com"
    assert message.get_content() == body + "\n"


# -- The EmailMessage class --------------------------------------------------------------------


def test_email_message_example_positional_bcc_and_reply_to(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    email_message = EmailMessage(
        "Hello",
        "Body goes here",
        "from@example.com",
        ["to1@example.com", "to2@example.com"],
        ["bcc@example.com"],
        headers={"Reply-To": "another@example.com"},
    )
    assert email_message.send() == 1
    [received] = smtp_server.received
    assert received.rcpt_tos == ["to1@example.com", "to2@example.com", "bcc@example.com"]
    message = received.message
    assert message["To"] == "to1@example.com, to2@example.com"
    assert message["Reply-To"] == "another@example.com"
    assert "Bcc" not in message
    assert "bcc@example.com" not in received.data.decode()


def test_all_parameters_optional_and_settable_before_send(smtp_server: SMTPServer) -> None:
    use_server(smtp_server, DEFAULT_FROM_EMAIL="default@example.com")
    email_message = EmailMessage()
    email_message.subject = "Set later"
    email_message.body = "Body"
    email_message.to = ["to@example.com"]
    email_message.send()
    [received] = smtp_server.received
    assert received.mail_from == "default@example.com"
    assert received.message["From"] == "default@example.com"
    assert received.message["Subject"] == "Set later"


@pytest.mark.parametrize(
    ("from_email", "header"),
    [
        ("webmaster@example.com", "webmaster@example.com"),
        ("Fred <webmaster@example.com>", "Fred <webmaster@example.com>"),
    ],
)
def test_both_from_email_forms_are_legal(
    smtp_server: SMTPServer, from_email: str, header: str
) -> None:
    use_server(smtp_server)
    EmailMessage("s", "b", from_email, ["to@example.com"]).send()
    [received] = smtp_server.received
    assert received.mail_from == "webmaster@example.com"
    assert received.message["From"] == header


def test_to_may_be_a_tuple(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    EmailMessage("s", "b", "from@example.com", ("a@example.com", "b@example.com")).send()
    assert smtp_server.received[0].rcpt_tos == ["a@example.com", "b@example.com"]


def test_connection_given_at_construction_is_used(smtp_server: SMTPServer) -> None:
    locmem = mailout.get_connection("mailout.backends.locmem.EmailBackend")
    use_server(smtp_server)
    EmailMessage("s", "b", "f@example.com", ["t@example.com"], connection=locmem).send()
    assert len(mailout.outbox) == 1
    assert smtp_server.received == []


def test_send_fail_silently_quashes_errors() -> None:
    mailout.configure({"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": free_port()})
    quiet = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    assert quiet.send(fail_silently=True) == 0
    loud = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    with pytest.raises(OSError):  # noqa: PT011 - any connection error; the text names none
        loud.send()


def test_message_builds_a_mime_object() -> None:
    built = EmailMessage("Hello", "Body", "f@example.com", ["t@example.com"]).message()
    assert isinstance(built, Message)
    assert built["Subject"] == "Hello"
    assert built.get_content_type() == "text/plain"


def test_recipients_is_to_cc_and_bcc() -> None:
    message = EmailMessage(
        "s", "b", "f@example.com", ["to@example.com"], ["bcc@example.com"], cc=["cc@example.com"]
    )
    assert message.recipients() == ["to@example.com", "cc@example.com", "bcc@example.com"]


class WatchedMessage(EmailMessage):
    """The text's advice: a subclass with another way to name recipients overrides recipients()."""

    def __init__(self, *args: Any, watchers: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watchers = list(watchers)

    def recipients(self) -> list[str]:
        return [*super().recipients(), *self.watchers]


def test_overridden_recipients_reach_the_smtp_envelope(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    message = WatchedMessage(
        "s", "b", "f@example.com", ["to@example.com"], watchers=["watcher@example.com"]
    )
    assert message.send() == 1
    [received] = smtp_server.received
    assert received.rcpt_tos == ["to@example.com", "watcher@example.com"]
    assert "watcher@example.com" not in received.data.decode()


def test_attach_a_mime_base_instance(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    part = MIMEBase("application", "x-custom")
    part.set_payload("custom payload")
    part.add_header("Content-Disposition", "attachment", filename="custom.bin")
    message = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    message.attach(part)
    message.send()
    [attachment] = smtp_server.received[0].message.iter_attachments()
    assert attachment.get_content_type() == "application/x-custom"
    assert attachment.get_filename() == "custom.bin"


IMG_DATA = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


def test_attach_design_png(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    message = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    message.attach("design.png", IMG_DATA, "image/png")
    message.send()
    received = smtp_server.received[0].message
    assert received.get_content_type() == "multipart/mixed"
    [attachment] = received.iter_attachments()
    assert attachment.get_filename() == "design.png"
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_content() == IMG_DATA
    assert received.get_body(("plain",)).get_content() == "b\n"


def test_attach_guesses_the_mimetype_from_the_filename() -> None:
    message = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    message.attach("design.png", IMG_DATA)
    message.attach("notes.txt", "some notes")
    assert [a.mimetype for a in message.attachments] == ["image/png", "text/plain"]


def test_attach_file(smtp_server: SMTPServer, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    path = images / "weather_map.png"
    path.write_bytes(IMG_DATA)
    use_server(smtp_server)
    message = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    message.attach_file(str(path))
    message.send()
    [attachment] = smtp_server.received[0].message.iter_attachments()
    assert attachment.get_filename() == "weather_map.png"
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_content() == IMG_DATA


def test_attach_file_with_explicit_mimetype(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"\x00\x01")
    message = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    message.attach_file(path, "application/x-thing")
    assert message.attachments == [("data.bin", b"\x00\x01", "application/x-thing")]


# -- Sending alternative content types ---------------------------------------------------------


def test_email_multi_alternatives_text_and_html(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    subject, from_email, to = "hello", "from@example.com", "to@example.com"
    text_content = "This is an important message."
    html_content = "<p>This is an <strong>important</strong> message.</p>"
    msg = EmailMultiAlternatives(subject, text_content, from_email, [to])
    msg.attach_alternative(html_content, "text/html")
    assert msg.send() == 1
    received = smtp_server.received[0].message
    assert received.get_content_type() == "multipart/alternative"
    plain, html = received.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content() == text_content + "\n"
    assert html.get_content_type() == "text/html"
    assert html.get_content() == html_content + "\n"
    assert received.get_body(("html",)).get_content() == html_content + "\n"


def test_email_multi_alternatives_inherits_email_message(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    msg = EmailMultiAlternatives(
        "s", "text", "f@example.com", ["t@example.com"], ["b@example.com"], cc=["c@example.com"]
    )
    msg.attach_alternative("<p>html</p>", "text/html")
    msg.attach("design.png", IMG_DATA, "image/png")
    msg.send()
    [received] = smtp_server.received
    assert received.rcpt_tos == ["t@example.com", "c@example.com", "b@example.com"]
    assert received.message.get_content_type() == "multipart/mixed"
    assert [p.get_filename() for p in received.message.iter_attachments()] == ["design.png"]


def test_content_subtype_html(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    html_content = "<p>This is an <strong>important</strong> message.</p>"
    msg = EmailMessage("hello", html_content, "from@example.com", ["to@example.com"])
    msg.content_subtype = "html"  # Main content is now text/html
    msg.send()
    received = smtp_server.received[0].message
    assert received.get_content_type() == "text/html"
    assert received.get_content() == html_content + "\n"


def test_body_is_text_plain_by_default() -> None:
    msg = EmailMessage("hello", "body", "from@example.com", ["to@example.com"])
    assert msg.message().get_content_type() == "text/plain"


# -- E-mail backends: open / close / send_messages ---------------------------------------------


def _messages(n: int, connection: BaseEmailBackend | None = None) -> list[EmailMessage]:
    return [
        EmailMessage(
            f"Hello {i}",
            "Body goes here",
            "from@example.com",
            ["to@example.com"],
            connection=connection,
        )
        for i in range(n)
    ]


def test_send_messages_on_a_closed_connection_opens_and_closes_it(
    smtp_server: SMTPServer,
) -> None:
    use_server(smtp_server)
    connection = mailout.get_connection()  # Use default e-mail connection
    assert connection.send_messages(_messages(3)) == 3
    assert smtp_server.connections == 1
    assert connection.connection is None  # type: ignore[attr-defined]
    assert connection.send_messages(_messages(2)) == 2
    assert smtp_server.connections == 2
    assert len(smtp_server.received) == 5


def test_opened_connection_is_left_open_across_calls(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    connection = mailout.get_connection()
    # Manually open the connection
    assert connection.open() is True
    # Construct an e-mail message that uses the connection
    email1 = EmailMessage(
        "Hello", "Body goes here", "from@example.com", ["to1@example.com"], connection=connection
    )
    email1.send()  # Send the e-mail
    # Construct two more messages
    email2 = EmailMessage("Hello", "Body goes here", "from@example.com", ["to2@example.com"])
    email3 = EmailMessage("Hello", "Body goes here", "from@example.com", ["to3@example.com"])
    # Send the two e-mails in a single call -
    assert connection.send_messages([email2, email3]) == 2
    assert connection.send_messages(_messages(1)) == 1
    # The connection was already open so send_messages() doesn't close it.
    assert connection.connection is not None  # type: ignore[attr-defined]
    assert connection.open() is False  # already open: this call did not open it
    # We need to manually close the connection.
    connection.close()
    assert connection.connection is None  # type: ignore[attr-defined]
    assert smtp_server.connections == 1
    assert [r.rcpt_tos for r in smtp_server.received] == [
        ["to1@example.com"],
        ["to2@example.com"],
        ["to3@example.com"],
        ["to@example.com"],
    ]


def test_backend_as_context_manager(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    with mailout.get_connection() as connection:
        connection.send_messages(_messages(1))
        connection.send_messages(_messages(1))
    assert connection.connection is None  # type: ignore[attr-defined]
    assert smtp_server.connections == 1
    assert len(smtp_server.received) == 2


# -- Obtaining an instance of an e-mail backend ------------------------------------------------


@pytest.mark.parametrize("name", list(BACKENDS))
def test_get_connection_follows_email_backend(name: str, tmp_path: Path) -> None:
    mailout.configure(
        {"EMAIL_BACKEND": f"mailout.backends.{name}.EmailBackend", "EMAIL_FILE_PATH": tmp_path}
    )
    assert type(mailout.get_connection()) is BACKENDS[name]


def test_get_connection_default_is_smtp() -> None:
    assert type(mailout.get_connection()) is mailout.backends.smtp.EmailBackend


@pytest.mark.parametrize("name", list(BACKENDS))
def test_get_connection_backend_argument_wins(name: str, tmp_path: Path) -> None:
    mailout.configure({"EMAIL_BACKEND": "mailout.backends.dummy.EmailBackend"})
    path = f"mailout.backends.{name}.EmailBackend"
    kwargs = {"file_path": tmp_path} if name == "filebased" else {}
    assert type(mailout.get_connection(path, **kwargs)) is BACKENDS[name]


@pytest.mark.parametrize("fail_silently", [True, False])
def test_get_connection_passes_fail_silently(fail_silently: bool) -> None:
    backend = mailout.get_connection("mailout.backends.locmem.EmailBackend", fail_silently)
    assert backend.fail_silently is fail_silently


def test_get_connection_passes_other_arguments_to_the_constructor() -> None:
    backend = mailout.get_connection(
        "mailout.backends.smtp.EmailBackend", host="mail.example.com", port=2525, timeout=5
    )
    assert isinstance(backend, mailout.backends.smtp.EmailBackend)
    assert (backend.host, backend.port, backend.timeout) == ("mail.example.com", 2525, 5)


def test_smtp_backend_reads_the_settings(smtp_server: SMTPServer) -> None:
    use_server(smtp_server, EMAIL_HOST_USER="u", EMAIL_HOST_PASSWORD="p", EMAIL_USE_TLS=True)
    backend = mailout.get_connection()
    assert isinstance(backend, mailout.backends.smtp.EmailBackend)
    assert (backend.host, backend.port) == (smtp_server.host, smtp_server.port)
    assert (backend.username, backend.password, backend.use_tls) == ("u", "p", True)


def test_smtp_connection_is_a_deprecated_alias(smtp_server: SMTPServer) -> None:
    with pytest.warns(DeprecationWarning, match="get_connection"):
        smtp_connection = mailout.SMTPConnection
    assert smtp_connection is mailout.backends.smtp.EmailBackend
    connection = smtp_connection(host=smtp_server.host, port=smtp_server.port)
    assert connection.send_messages(_messages(1)) == 1
    assert len(smtp_server.received) == 1


def test_smtp_connection_warns_on_import() -> None:
    with pytest.warns(DeprecationWarning, match="SMTPConnection is deprecated"):
        from mailout import SMTPConnection  # noqa: F401


# -- Console backend ---------------------------------------------------------------------------


def test_console_backend_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    mailout.configure({"EMAIL_BACKEND": "mailout.backends.console.EmailBackend"})
    mailout.send_mail("Console subject", "Console body", "f@example.com", ["t@example.com"])
    out = capsys.readouterr().out
    assert "Subject: Console subject" in out
    assert "Console body" in out


def test_console_backend_stream_argument(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    connection = mailout.get_connection("mailout.backends.console.EmailBackend", stream=stream)
    assert connection.send_messages(_messages(2)) == 2
    text = stream.getvalue()
    assert "Subject: Hello 0" in text
    assert "Subject: Hello 1" in text
    assert capsys.readouterr().out == ""


# -- File backend ------------------------------------------------------------------------------


def _files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def test_file_backend_file_path_argument(tmp_path: Path) -> None:
    folder = tmp_path / "app-messages"
    connection = mailout.get_connection(
        "mailout.backends.filebased.EmailBackend", file_path=str(folder)
    )
    assert connection.send_messages(_messages(2)) == 2
    [log] = _files(folder)
    content = log.read_bytes()
    assert b"Subject: Hello 0" in content
    assert b"Subject: Hello 1" in content


def test_file_backend_email_file_path_setting(tmp_path: Path) -> None:
    folder = tmp_path / "app-messages"
    mailout.configure(
        {"EMAIL_BACKEND": "mailout.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(folder)}
    )
    mailout.send_mail("From settings", "b", "f@example.com", ["t@example.com"])
    [log] = _files(folder)
    parsed = _parse(log.read_bytes().split(b"\n" + b"-" * 79)[0])
    assert parsed["Subject"] == "From settings"


def test_file_backend_one_file_per_backend_reused_across_sessions(tmp_path: Path) -> None:
    """Django 6.1: a backend keeps its file across close() and open()."""
    connection = mailout.get_connection(
        "mailout.backends.filebased.EmailBackend", file_path=tmp_path
    )
    connection.open()
    connection.send_messages(_messages(1))
    connection.send_messages(_messages(1))
    connection.close()
    assert len(_files(tmp_path)) == 1  # one session, one file, both messages
    connection.open()
    connection.send_messages(_messages(1))
    connection.close()
    connection.send_messages(_messages(1))  # an implicit session: the same file again
    (log,) = _files(tmp_path)
    assert log.read_bytes().count(b"\n" + b"-" * 79 + b"\n") == 4


def test_file_backend_each_backend_is_a_new_file(tmp_path: Path) -> None:
    for _ in range(2):
        mailout.get_connection(
            "mailout.backends.filebased.EmailBackend", file_path=tmp_path
        ).send_messages(_messages(1))
    assert len(_files(tmp_path)) == 2


# -- In-memory backend -------------------------------------------------------------------------


def test_locmem_outbox_is_created_when_the_first_message_is_sent() -> None:
    del mailout.outbox
    mailout.configure({"EMAIL_BACKEND": "mailout.backends.locmem.EmailBackend"})
    mailout.send_mail("s", "b", "f@example.com", ["t@example.com"])
    assert len(mailout.outbox) == 1


def test_locmem_outbox_holds_email_message_instances() -> None:
    mailout.configure({"EMAIL_BACKEND": "mailout.backends.locmem.EmailBackend"})
    sent = EmailMessage("Kept", "b", "f@example.com", ["t@example.com"])
    sent.send()
    mailout.send_mail("Other", "b", "f@example.com", ["t@example.com"])
    # A copy, as Django 6.1 keeps: later edits of the message do not change what was sent.
    assert mailout.outbox[0] is not sent
    sent.subject = "Changed"
    sent.to.append("late@example.com")
    assert all(isinstance(m, EmailMessage) for m in mailout.outbox)
    assert [m.subject for m in mailout.outbox] == ["Kept", "Other"]
    assert mailout.outbox[0].to == ["t@example.com"]
    assert [m.sent_using for m in mailout.outbox] == [None, None]  # type: ignore[attr-defined]


# -- Dummy backend -----------------------------------------------------------------------------


def test_dummy_backend_does_nothing(smtp_server: SMTPServer, capsys: Any) -> None:
    use_server(smtp_server, EMAIL_BACKEND="mailout.backends.dummy.EmailBackend")
    assert mailout.send_mail("s", "b", "f@example.com", ["t@example.com"]) == 1
    assert mailout.get_connection().send_messages(_messages(3)) == 3
    assert smtp_server.connections == 0
    assert mailout.outbox == []
    assert capsys.readouterr().out == ""


# -- Defining a custom e-mail backend ----------------------------------------------------------


class RecordingBackend(BaseEmailBackend):
    """A custom backend, as the text describes: send_messages, and open/close for a session."""

    sessions: list[list[str]] = []

    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently)
        self.options = kwargs
        self.current: list[str] | None = None

    def open(self) -> bool:
        if self.current is not None:
            return False
        self.current = []
        return True

    def close(self) -> None:
        if self.current is not None:
            RecordingBackend.sessions.append(self.current)
            self.current = None

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        opened = self.open()
        assert self.current is not None
        self.current.extend(m.subject for m in email_messages)
        if opened:
            self.close()
        return len(email_messages)


@pytest.fixture
def recording() -> list[list[str]]:
    RecordingBackend.sessions = []
    return RecordingBackend.sessions


def test_custom_backend_from_email_backend_setting(recording: list[list[str]]) -> None:
    mailout.configure({"EMAIL_BACKEND": f"{__name__}.RecordingBackend"})
    assert mailout.send_mail("one", "b", "f@example.com", ["t@example.com"]) == 1
    assert mailout.send_mass_mail([("two", "b", "f@example.com", ["t@example.com"])] * 2) == 2
    assert recording == [["one"], ["two", "two"]]


def test_custom_backend_by_dotted_path_with_options(recording: list[list[str]]) -> None:
    backend = mailout.get_connection(f"{__name__}.RecordingBackend", colour="blue")
    assert isinstance(backend, RecordingBackend)
    assert backend.options == {"colour": "blue"}
    with backend:
        EmailMessage("a", "b", "f@example.com", ["t@example.com"], connection=backend).send()
        EmailMessage("c", "d", "f@example.com", ["t@example.com"], connection=backend).send()
    assert recording == [["a", "c"]]


def test_custom_backend_must_implement_send_messages() -> None:
    class Incomplete(BaseEmailBackend):
        pass

    with pytest.raises(NotImplementedError):
        Incomplete().send_messages(_messages(1))


# -- Testing e-mail sending: a "dumb" SMTP server on a local port -------------------------------


def test_local_debugging_server_receives_everything(smtp_server: SMTPServer) -> None:
    use_server(smtp_server)
    msg = EmailMultiAlternatives("Subject", "text", "f@example.com", ["t@example.com"])
    msg.attach_alternative("<p>html</p>", "text/html")
    msg.send()
    data = smtp_server.received[0].data
    assert b"Subject: Subject" in data
    assert b"<p>html</p>" in data
