"""A throwaway Postfix (the real `master` + `smtpd`) on a loopback port, as a receiving MTA.

Everything lives in a fresh temporary directory (its own config, queue and data directories);
the system's /etc/postfix is never read for settings nor written. Mail for `domains` is
delivered by Postfix's `virtual` agent into one Maildir (`pf.maildir`) that tests can read;
mail for any other domain is refused with ``454 4.7.1 Relay access denied`` (or, with
``relay=True``, accepted and discarded). There is no SMTP client service in its master.cf,
so nothing can leave the machine. STARTTLS is offered with a trustme certificate::

    with PostfixServer() as pf:
        smtplib.SMTP(pf.host, pf.port).sendmail("a@example.org", ["bob@example.test"], msg)
        [delivered] = pf.wait_for_messages(1)

Needs the Debian package ``postfix`` and root (the master daemon drops privileges to the
``postfix`` user itself); `start()` calls `pytest.skip` when either is missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import pytest
import trustme

__all__ = ["PostfixServer", "postfix_missing"]

DAEMON_DIRECTORY = Path("/usr/lib/postfix/sbin")
MASTER = DAEMON_DIRECTORY / "master"

# Only the services that receiving and local delivery need: no pickup, no smtp client.
_MASTER_CF = """\
{listen} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
proxymap unix - - n - - proxymap
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
tlsmgr unix - - n 1000? 1 tlsmgr
"""

# What `postfix check` would create, with the owners and modes it would give.
_QUEUE_DIRS = {
    "pid": ("root", 0o755),
    "maildrop": ("postfix", 0o730),
    "public": ("postfix", 0o710),
    **dict.fromkeys(
        [
            *("active", "bounce", "corrupt", "defer", "deferred", "flush"),
            *("hold", "incoming", "private", "saved", "trace"),
        ],
        ("postfix", 0o700),
    ),
}


def postfix_missing() -> str | None:
    """Why a Postfix server cannot run here, or ``None`` if it can."""
    if not MASTER.exists():
        return f"postfix is not installed ({MASTER} missing; apt-get install postfix)"
    if os.geteuid() != 0:
        return "the postfix master daemon must be started as root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no 'postfix' user (is the postfix package installed?)"
    return None


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PostfixServer:
    """Postfix receiving on `host`:`port`; use it as a context manager.

    Arguments (keyword-only): `domains` accepted for delivery, `hostname` (myhostname),
    `relay` (accept and discard mail for other domains instead of refusing it), `tls`
    (offer STARTTLS), `config` (extra main.cf settings, overriding the defaults),
    `max_lifetime` (seconds after which the master exits by itself, should the test process
    die without stopping it).

    Attributes: `host`, `port`, `directory` (the temporary root), `maildir`, `ca` (the
    trustme CA of the STARTTLS certificate), `log` (path of Postfix's own log).
    """

    def __init__(
        self,
        *,
        domains: tuple[str, ...] = ("example.test",),
        hostname: str = "postfix.test",
        relay: bool = False,
        tls: bool = True,
        config: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        max_lifetime: int = 3600,
    ) -> None:
        self.host, self.port = host, 0
        self.domains, self.hostname, self.relay, self.tls = domains, hostname, relay, tls
        self.config = dict(config or {})
        self.max_lifetime = max_lifetime
        self.ca = trustme.CA()
        self.directory = Path()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def maildir(self) -> Path:
        return self.directory / "mail" / "inbox"

    @property
    def log(self) -> Path:
        return self.directory / "postfix.log"

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def messages(self) -> list[bytes]:
        """Messages delivered so far, oldest first, as Postfix wrote them (with the
        Return-Path, Delivered-To and Received headers it adds)."""
        files = [p for sub in ("new", "cur") for p in (self.maildir / sub).glob("*")]
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [p.read_bytes() for p in files]

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """Wait until at least `count` messages are delivered (delivery is asynchronous)."""
        deadline = time.monotonic() + timeout
        while len(found := self.messages()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"PostfixServer: {len(found)} of {count} messages delivered after {timeout}s;"
                    f" log:\n{self.log_text()[-3000:]}"
                )
            time.sleep(0.02)
        return found

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PostfixServer:
        if reason := postfix_missing():
            pytest.skip(reason)
        # Not under pytest's tmp_path: its 0700 parents would keep the postfix user out.
        self.directory = Path(tempfile.mkdtemp(prefix="mailout-postfix-"))
        try:
            self._prepare()
            log = self.log.open("wb")
            self._process = subprocess.Popen(
                # -s: log to our stdout; -e: exit on its own should this process die first.
                [
                    str(MASTER),
                    "-c",
                    str(self.directory / "conf"),
                    "-s",
                    "-e",
                    str(self.max_lifetime),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
            )
            log.close()
            self._wait_ready(timeout=20.0)
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare(self) -> None:
        root = self.directory
        postfix = pwd.getpwnam("postfix")
        root.chmod(0o755)
        for sub in ("conf", "queue", "data", "mail"):
            (root / sub).mkdir()
        (root / "queue").chmod(0o755)
        for name, (owner, mode) in _QUEUE_DIRS.items():
            path = root / "queue" / name
            path.mkdir(mode=mode)
            path.chmod(mode)  # mkdir's mode is masked by the umask
            if owner == "postfix":
                os.chown(path, postfix.pw_uid, postfix.pw_gid)
        for sub in ("data", "mail"):
            os.chown(root / sub, postfix.pw_uid, postfix.pw_gid)

        self.port = _free_port(self.host)
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(root / "queue"),
            "data_directory": str(root / "data"),
            "mail_owner": "postfix",
            "inet_interfaces": self.host,
            "inet_protocols": "ipv4",
            "myhostname": self.hostname,
            "mydestination": "",
            "mynetworks": "127.0.0.0/8" if self.relay else "",
            "maillog_file": "/dev/stdout",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "smtpd_client_event_limit_exceptions": "127.0.0.0/8",
            "smtputf8_enable": "yes",
            # Belt and braces: nothing is ever handed to an outbound transport.
            "default_transport": "discard",
            "relay_transport": "discard",
            "local_transport": "discard",
            "virtual_mailbox_domains": " ".join(self.domains),
            "virtual_mailbox_base": str(root / "mail"),
            "virtual_mailbox_maps": "static:inbox/",  # trailing slash: Maildir
            "virtual_uid_maps": f"static:{postfix.pw_uid}",
            "virtual_gid_maps": f"static:{postfix.pw_gid}",
            "virtual_minimum_uid": "1",
        }
        if self.tls:
            cert = self.ca.issue_cert("localhost", self.host, self.hostname)
            chain = root / "conf" / "chain.pem"
            chain.write_bytes(
                cert.private_key_pem.bytes() + b"".join(b.bytes() for b in cert.cert_chain_pems)
            )
            chain.chmod(0o600)
            settings["smtpd_tls_security_level"] = "may"
            settings["smtpd_tls_chain_files"] = str(chain)
        settings.update(self.config)
        main_cf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        (root / "conf" / "main.cf").write_text(main_cf)
        (root / "conf" / "master.cf").write_text(
            _MASTER_CF.format(listen=f"{self.host}:{self.port}")
        )
        # Postfix waits (in 300 ms naps) until its config files look older than "now", in
        # case an editor is still writing them: backdate them to skip that wait.
        past = time.time() - 10
        for name in ("main.cf", "master.cf"):
            os.utime(root / "conf" / name, (past, past))

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postfix master exited early; log:\n{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as sock:
                    if sock.recv(512).startswith(b"220"):
                        sock.sendall(b"QUIT\r\n")
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"postfix did not answer in {timeout}s; log:\n{self.log_text()}")

    def stop(self) -> None:
        if self._process is not None:
            # SIGTERM: the master passes it on to its children and exits (master(8)).
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self.directory != Path():
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostfixServer:
        return self.start()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
