"""The catcher's SMTP side, driven by independent clients over loopback; bytes compared exactly."""

from __future__ import annotations

import importlib.util
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailout.catcher.server import Catcher
from mailout.catcher.store import MessageStore
from mailout.smtp import Envelope, SMTPClient

ROOT = Path(__file__).resolve().parents[2]
BODY = (
    b"From: a@example.com\r\nTo: b@example.com\r\nSubject: exact\r\n\r\n"
    b"line one\r\n.leading dot\r\n..two dots\r\n\xc3\xa9 8bit\r\nbare\nlf\r\n"
)
# What SMTP clients send: they normalise a bare LF to CRLF, so their tests use this one.
CLEAN = BODY.replace(b"bare\nlf", b"bare lf")


@pytest.fixture
def catcher() -> Iterator[Catcher]:
    with Catcher(smtp=("127.0.0.1", 0), http=None, max_size=100_000).running() as catcher:
        yield catcher


def stored(catcher: Catcher, count: int = 1, timeout: float = 5) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while catcher.store.list()[0] < count and time.monotonic() < deadline:
        time.sleep(0.01)
    _, summaries = catcher.store.list(limit=10_000)
    return [catcher.store.raw(s.id) or b"" for s in reversed(summaries)]


def without_received(raw: bytes) -> bytes:
    first, sep, rest = raw.partition(b"\r\n")
    assert first.startswith(b"Received: from ")
    assert sep
    assert b"(mailout)" in first
    return rest


class Wire:
    """A raw client socket: write bytes, read reply lines."""

    def __init__(self, catcher: Catcher) -> None:
        assert catcher.smtp_address is not None
        self.sock = socket.create_connection(catcher.smtp_address, timeout=5)
        self.file = self.sock.makefile("rb")
        assert self.line().startswith(b"220 ")

    def line(self) -> bytes:
        return self.file.readline()

    def reply(self) -> list[bytes]:
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def wire(catcher: Catcher) -> Iterator[Wire]:
    client = Wire(catcher)
    yield client
    client.close()


# -- independent clients ---------------------------------------------------------------------


def test_smtplib_bytes_exact(catcher: Catcher) -> None:
    with smtplib.SMTP(*catcher.smtp_address or ()) as client:
        client.sendmail("a@example.com", ["b@example.com", "Bcc@Example.COM"], CLEAN)
    [raw] = stored(catcher)
    assert without_received(raw) == CLEAN
    [summary] = catcher.store.list()[1]
    assert summary.recipients == ("b@example.com", "Bcc@Example.COM")
    assert catcher.store.list(to="Bcc@example.com")[0] == 1


def test_smtplib_helo_only_client(catcher: Catcher) -> None:
    with smtplib.SMTP(*catcher.smtp_address or ()) as client:
        client.helo("old")
        assert client.mail("a@example.com") == (250, b"OK")  # no enhanced codes without EHLO
        client.rcpt("b@example.com")
        code, _ = client.data(b"Subject: helo\r\n\r\nx\r\n")
        assert code == 250
    assert b"with SMTP;" in stored(catcher)[0]


def test_mailout_pipelining_and_chunking_client(catcher: Catcher) -> None:
    items = [
        (Envelope("s@example.com", (f"r{i}@example.com",)), CLEAN + b"n%d\r\n" % i)
        for i in range(20)
    ]
    with SMTPClient("127.0.0.1", catcher.smtp_port, timeout=5) as client:
        assert client.extensions.pipelining
        assert client.extensions.chunking
        results = client.send_many(items)
    assert all(not isinstance(r, Exception) for r in results)
    raws = stored(catcher, 20)
    assert [without_received(r) for r in raws] == [content for _, content in items]


def test_swaks(catcher: Catcher, tmp_path: Path) -> None:
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed (apt-get install swaks)")
    data = tmp_path / "mail.eml"
    # swaks ends the data with a line break of its own, so the file has none
    data.write_bytes(CLEAN.replace(b"\r\n", b"\n")[:-1])
    result = subprocess.run(
        [
            "swaks",
            "--server",
            f"127.0.0.1:{catcher.smtp_port}",
            "--from",
            "a@example.com",
            "--to",
            "b@example.com,c@example.com",
            "--data",
            f"@{data}",
            "--pipeline",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [raw] = stored(catcher)
    assert without_received(raw) == CLEAN  # swaks sends CRLF line ends, dot-stuffed
    assert catcher.store.list()[1][0].recipients == ("b@example.com", "c@example.com")


def test_django_smtp_backend(catcher: Catcher) -> None:
    # Django is a dev dependency (5.2 on Python 3.11; bench/.venv has the newest on 3.12).
    if importlib.util.find_spec("django") is not None:
        python = Path(sys.executable)
    else:
        python = ROOT / "bench" / ".venv" / "bin" / "python"
        if not python.exists():
            pytest.skip("Django is not installed here nor in bench/.venv")
    script = (
        "import sys\n"
        "from django.conf import settings\n"
        "settings.configure(EMAIL_HOST='127.0.0.1', EMAIL_PORT=int(sys.argv[1]))\n"
        "from django.core.mail import EmailMessage\n"
        "m = EmailMessage('From Django', 'Body é\\n', 'd@example.com', ['t@example.com'],"
        " bcc=['hidden@example.com'])\n"
        "m.attach('a.bin', bytes(range(256)), 'application/octet-stream')\n"
        "assert m.send() == 1\n"
    )
    result = subprocess.run(
        [str(python), "-c", script, str(catcher.smtp_port)],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": ""},
    )
    if result.returncode != 0 and b"No module named 'django'" in result.stderr:
        pytest.skip(f"Django is not installed for {python}")
    assert result.returncode == 0, result.stderr.decode()
    [raw] = stored(catcher)
    assert catcher.store.list(to="hidden@example.com")[0] == 1
    received = without_received(raw)
    assert b"Subject: From Django\r\n" in received
    # Django serialises again when sending (new boundary), so compare the parsed attachment
    from mailout.catcher import parse

    [item] = parse.details(raw).attachments
    assert parse.attachment(raw, item.index) == (
        "application/octet-stream",
        "a.bin",
        bytes(range(256)),
    )


# -- protocol details over raw bytes ---------------------------------------------------------


def test_ehlo_advertises_extensions(wire: Wire) -> None:
    wire.send(b"EHLO me\r\n")
    lines = wire.reply()
    keywords = {line[4:].split()[0].decode() for line in lines[1:]}
    assert {
        "SIZE",
        "8BITMIME",
        "SMTPUTF8",
        "PIPELINING",
        "CHUNKING",
        "ENHANCEDSTATUSCODES",
    } <= keywords
    assert b"250-SIZE 100000\r\n" in lines
    assert "AUTH" not in keywords
    assert "STARTTLS" not in keywords


def test_enhanced_codes_on_every_reply_after_ehlo(wire: Wire) -> None:
    wire.send(b"EHLO me\r\n")
    wire.reply()
    exchanges = [
        (b"NOOP\r\n", b"250 2.0.0 "),
        (b"RSET\r\n", b"250 2.0.0 "),
        (b"RCPT TO:<x@example.com>\r\n", b"503 5.5.1 "),
        (b"MAIL FROM:<a@example.com>\r\n", b"250 2.1.0 "),
        (b"MAIL FROM:<a@example.com>\r\n", b"503 5.5.1 "),
        (b"RCPT TO:<b@example.com>\r\n", b"250 2.1.5 "),
        (b"RCPT TO:<@>\r\n", b"553 5.1.3 "),
        (b"BOGUS\r\n", b"500 5.5.2 "),
        (b"MAIL\r\n", b"501 5.5.4 "),
        (b"VRFY b@example.com\r\n", b"252 2.5.0 "),
        (b"DATA\r\n", b"354 "),
        (b"Subject: x\r\n\r\nbody\r\n.\r\n", b"250 2.0.0 "),
        (b"QUIT\r\n", b"221 2.0.0 "),
    ]
    for command, expected in exchanges:
        wire.send(command)
        reply = wire.line()
        assert reply.startswith(expected), (command, reply)


def test_pipelined_session_in_one_write(catcher: Catcher, wire: Wire) -> None:
    wire.send(
        b"EHLO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
        b"RCPT TO:<c@example.com>\r\nDATA\r\n"
        + BODY.replace(b"\r\n.", b"\r\n..")
        + b".\r\nMAIL FROM:<>\r\nRCPT TO:<d@example.com>\r\nBDAT 5\r\nSubjeBDAT 7 LAST\r\n"
        b"ct: x\r\n"
        b"RSET\r\nQUIT\r\n"
    )
    replies = [wire.reply()[-1][:9] for _ in range(11)]
    assert replies == [
        b"250 ENHAN",
        b"250 2.1.0",
        b"250 2.1.5",
        b"250 2.1.5",
        b"354 End d",
        b"250 2.0.0",
        b"250 2.1.0",
        b"250 2.1.5",
        b"250 2.0.0",
        b"250 2.0.0",
        b"250 2.0.0",
    ]
    assert wire.line().startswith(b"221 2.0.0")
    first, second = stored(catcher, 2)
    assert without_received(first) == BODY
    assert without_received(second) == b"Subject: x\r\n"
    assert catcher.store.list()[1][0].mail_from == ""


def test_bdat_is_read_exactly_and_never_unstuffed(catcher: Catcher, wire: Wire) -> None:
    content = b"Subject: b\r\n\r\n.\r\n..\r\nQUIT\r\nbinary\x00\xff" + bytes(range(256)) * 300
    wire.send(b"EHLO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
    for _ in range(3):
        wire.reply()
    half = len(content) // 2
    wire.send(b"BDAT %d\r\n" % half + content[:half])
    assert wire.line() == b"250 2.0.0 %d octets received\r\n" % half
    wire.send(b"BDAT %d LAST\r\n" % (len(content) - half) + content[half:])
    assert wire.line().startswith(b"250 2.0.0")
    wire.send(b"NOOP\r\n")
    assert wire.line().startswith(b"250 2.0.0")
    assert without_received(stored(catcher)[0]) == content


def test_bdat_zero_last_and_data_after_bdat(catcher: Catcher, wire: Wire) -> None:
    wire.send(b"EHLO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
    for _ in range(3):
        wire.reply()
    wire.send(b"BDAT 4\r\nx: y")
    assert wire.line().startswith(b"250 ")
    wire.send(b"DATA\r\n")
    assert wire.line().startswith(b"503 5.5.1")
    wire.send(b"BDAT 0 LAST\r\n")
    assert wire.line().startswith(b"250 2.0.0")
    assert without_received(stored(catcher)[0]) == b"x: y"


def test_bdat_without_recipients_consumes_the_chunk(catcher: Catcher, wire: Wire) -> None:
    # The chunk holds something that looks like commands: it must be swallowed, not run.
    smuggled = b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<v@example.com>\r\n"
    wire.send(b"EHLO me\r\n")
    wire.reply()
    wire.send(b"BDAT %d LAST\r\n" % len(smuggled) + smuggled + b"NOOP\r\n")
    assert wire.line().startswith(b"503 5.5.1")
    assert wire.line().startswith(b"250 2.0.0")  # the NOOP, and nothing else
    assert catcher.store.list()[0] == 0


def test_bdat_syntax_error_closes(wire: Wire) -> None:
    wire.send(b"EHLO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
    for _ in range(3):
        wire.reply()
    wire.send(b"BDAT lots\r\nwhatever\r\n")
    assert wire.line().startswith(b"501 5.5.4")
    assert wire.line() == b""  # closed: unknown chunk length, so nothing after it is safe


def test_size_limit(catcher: Catcher, wire: Wire) -> None:
    wire.send(b"EHLO me\r\n")
    wire.reply()
    wire.send(b"MAIL FROM:<a@example.com> SIZE=100001\r\n")
    assert wire.line().startswith(b"552 5.3.4")
    wire.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    for _ in range(3):
        wire.line()
    wire.send((b"x" * 998 + b"\r\n") * 101 + b".\r\n")
    assert wire.line().startswith(b"552 5.3.4")
    wire.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
    wire.line(), wire.line()
    wire.send(b"BDAT 100001 LAST\r\n" + b"y" * 100_001)
    assert wire.line().startswith(b"552 5.3.4")
    wire.send(b"NOOP\r\n")
    assert wire.line().startswith(b"250 2.0.0")
    assert catcher.store.list()[0] == 0


@pytest.mark.parametrize("split", [0, 1], ids=["crlf-whole", "crlf-split-across-writes"])
def test_a_line_over_the_limit_is_refused_after_its_end_and_the_next_message_is_whole(
    catcher: Catcher, wire: Wire, split: int
) -> None:
    from mailout.catcher.smtp import LINE_LIMIT

    wire.send(b"EHLO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    for _ in range(4):
        wire.reply()
    # Over the limit, and (without split) over the max size too: the line comes first.
    wire.send(b"Subject: long\r\n\r\n" + b"z" * (3 * LINE_LIMIT + 7) + b"\r")
    time.sleep(0.05 * split)  # with split, the LF of the long line's CRLF comes apart
    wire.send(b"\n.leading dot, still inside\r\n.\r\n")
    assert wire.line().startswith(b"500 5.5.2 Line too long")
    wire.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    for _ in range(3):
        wire.line()
    wire.send(b"Subject: next\r\n\r\nafter\r\n.\r\n")
    assert wire.line().startswith(b"250 2.0.0")
    [raw] = stored(catcher)
    assert without_received(raw) == b"Subject: next\r\n\r\nafter\r\n"


def test_a_transaction_takes_at_most_max_recipients(catcher: Catcher, wire: Wire) -> None:
    from mailout.catcher.smtp import MAX_RECIPIENTS

    wire.send(b"EHLO me\r\nMAIL FROM:<a@example.com>\r\n")
    wire.reply(), wire.reply()
    wire.send(b"".join(b"RCPT TO:<r%d@example.com>\r\n" % i for i in range(MAX_RECIPIENTS + 2)))
    replies = [wire.line()[:3] for _ in range(MAX_RECIPIENTS + 2)]
    assert replies == [b"250"] * MAX_RECIPIENTS + [b"452"] * 2
    wire.send(b"DATA\r\nSubject: many\r\n\r\nx\r\n.\r\n")
    assert wire.line().startswith(b"354")
    assert wire.line().startswith(b"250")
    [summary] = catcher.store.list()[1]
    assert len(summary.recipients) == MAX_RECIPIENTS


def test_long_lines_are_kept(catcher: Catcher) -> None:
    body = b"Subject: long\r\n\r\n" + b"z" * 5000 + b"\r\n"
    with smtplib.SMTP(*catcher.smtp_address or ()) as client:
        client.sendmail("a@example.com", ["b@example.com"], body)
    assert without_received(stored(catcher)[0]) == body


def test_smtputf8_address(catcher: Catcher) -> None:
    with smtplib.SMTP(*catcher.smtp_address or ()) as client:
        client.sendmail(
            "josé@example.com",
            ["zoë@example.com"],
            "Subject: ü\r\n\r\nx\r\n".encode(),
            mail_options=["SMTPUTF8"],
        )
    assert catcher.store.list(to="zoë@EXAMPLE.com")[1][0].mail_from == "josé@example.com"


# -- robustness --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"\r\n",
        b"\x00\xff\xfe\r\n",
        b"EHLO\r\n",
        b"HELO\r\n",
        b"MAIL FROM:<a@b> SIZE=x\r\n",
        b"RCPT TO:\r\n",
        b"DATA extra\r\n",
        b"A" * 5000 + b"\r\n",
        b"AUTH PLAIN\r\n",
        b"STARTTLS\r\n",
        b"\xc3\xa9\r\n",
        b"MAIL FROM:<a@b> BODY=NONSENSE\r\n",
    ],
)
def test_malformed_input_gets_an_error_and_the_server_lives(
    catcher: Catcher, garbage: bytes
) -> None:
    client = Wire(catcher)
    client.send(b"EHLO me\r\n")
    client.reply()
    client.send(garbage)
    reply = client.reply()[-1]
    assert reply[:1] in (b"4", b"5"), reply
    client.send(b"NOOP\r\n")
    assert client.line().startswith(b"250")
    client.close()


@pytest.mark.parametrize(
    "cut",
    [b"DATA\r\nSubject: half\r\n\r\npart of a bo", b"BDAT 100 LAST\r\nSubject: half"],
)
def test_disconnect_mid_message_stores_nothing_and_server_lives(
    catcher: Catcher, cut: bytes
) -> None:
    client = Wire(catcher)
    client.send(b"EHLO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n" + cut)
    time.sleep(0.05)
    client.sock.shutdown(socket.SHUT_RDWR)
    client.close()
    time.sleep(0.05)
    with smtplib.SMTP(*catcher.smtp_address or ()) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: after\r\n\r\nx\r\n")
    assert [s.subject for s in catcher.store.list()[1]] == ["after"]


def test_burst_1000_messages_from_8_connections(catcher: Catcher) -> None:
    errors: list[BaseException] = []

    def sender(n: int) -> None:
        try:
            items = [
                (
                    Envelope("s@example.com", (f"c{n}@example.com",)),
                    b"Subject: %d-%d\r\n\r\nbody\r\n" % (n, i),
                )
                for i in range(125)
            ]
            with SMTPClient("127.0.0.1", catcher.smtp_port, timeout=30) as client:
                for start in range(0, 125, 25):
                    results = client.send_many(items[start : start + 25])
                    assert not any(isinstance(r, Exception) for r in results), results
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert catcher.store.list()[0] == 1000
    assert catcher.store.inboxes() == [(f"c{n}@example.com", 125) for n in range(8)]


# -- TLS and AUTH ------------------------------------------------------------------------------


@pytest.fixture
def tls_catcher(tmp_path: Path) -> Iterator[Catcher]:
    pytest.importorskip("cryptography")
    users = tmp_path / "users"
    users.write_text("# test users\nalice:s3cret\n")
    from mailout.catcher.smtp import load_users

    with Catcher(
        smtp=("127.0.0.1", 0),
        smtps=("127.0.0.1", 0),
        http=None,
        starttls=True,
        tls_cert_dir=tmp_path / "certs",
        auth=load_users(users),
    ).running() as catcher:
        yield catcher


def client_context(catcher: Catcher) -> ssl.SSLContext:
    assert catcher.cert_path is not None
    return ssl.create_default_context(cafile=str(catcher.cert_path))


def test_starttls_with_generated_certificate_and_auth(tls_catcher: Catcher) -> None:
    with smtplib.SMTP("localhost", tls_catcher.smtp_port) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=client_context(tls_catcher))
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice", "wrong")
        client.login("alice", "s3cret")
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: tls\r\n\r\nx\r\n")
    raw = stored(tls_catcher)[0]
    assert b" with ESMTPSA;" in raw.split(b"\r\n")[0]


def test_auth_required_when_enabled(tls_catcher: Catcher) -> None:
    with smtplib.SMTP("127.0.0.1", tls_catcher.smtp_port) as client:
        client.ehlo()
        assert client.has_extn("auth")
        code, message = client.mail("a@example.com")
        assert (code, message[:5]) == (530, b"5.7.0")


def test_implicit_tls_listener(tls_catcher: Catcher) -> None:
    assert tls_catcher.smtps_address is not None
    context = client_context(tls_catcher)
    with smtplib.SMTP_SSL("localhost", tls_catcher.smtps_address[1], context=context) as client:
        client.login("alice", "s3cret")
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: smtps\r\n\r\nx\r\n")
    assert b" with ESMTPSA;" in stored(tls_catcher)[0]


def test_mailout_client_over_starttls(tls_catcher: Catcher) -> None:
    assert tls_catcher.cert_path is not None
    with SMTPClient(
        "localhost",
        tls_catcher.smtp_port,
        use_tls=True,
        username="alice",
        password="s3cret",
        ssl_cafile=str(tls_catcher.cert_path),
        timeout=5,
    ) as client:
        client.send(Envelope("a@example.com", ("b@example.com",)), CLEAN)
    assert without_received(stored(tls_catcher)[0]) == CLEAN


def test_auth_any(tmp_path: Path) -> None:
    with Catcher(smtp=("127.0.0.1", 0), http=None, auth="any").running() as catcher:
        with smtplib.SMTP(*catcher.smtp_address or ()) as client:
            client.login("whoever", "whatever")
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: a\r\n\r\nx\r\n")
        assert b"with ESMTPA;" in stored(catcher)[0]


def test_store_passed_in_is_left_open(tmp_path: Path) -> None:
    store = MessageStore(str(tmp_path / "m.db"))
    with Catcher(store, smtp=("127.0.0.1", 0), http=None).running() as catcher:
        client = smtplib.SMTP(*catcher.smtp_address or ())
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: a\r\n\r\nx\r\n")
        client.quit()
    assert store.list()[0] == 1
    store.close()
    assert sys.version_info >= (3, 11)
