"""Memory benchmark: peak RSS of sending N messages with send_messages(), against holding them.

    .venv/bin/python bench/memory_bench.py [-n 100000]

Builds N personalised messages (~2 KB text + ~2.5 KB HTML each), measures the process's RSS
(the cost of holding the message objects), then sends them all with one
``get_connection().send_messages(messages)`` to the loopback sink running in another process
(``tests/servers/sink.py``), sampling RSS every 10 ms. The target (issue 4): the peak stays
within 1.5x of the RSS while holding the messages, i.e. no second copy of every serialised
message. Reported, never asserted in tests.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.sink import SinkServer  # noqa: E402

import mailout  # noqa: E402
from mailout.backends.smtp import EmailBackend  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def build(n: int) -> list[mailout.EmailMessage]:
    messages = []
    for i in range(n):
        text = "\n".join(
            f"Line {k}: Hello customer {i}, your order #{i * 100 + k} has shipped today."
            for k in range(28)
        )
        html = (
            "<html><body>"
            + "".join(
                f"<p>Line {k}: Hello <b>customer {i}</b>, order #{i * 100 + k} shipped.</p>"
                for k in range(40)
            )
            + "</body></html>"
        )
        message = mailout.EmailMultiAlternatives(
            f"Your order #{i} has shipped", text, "shop@example.com", [f"c{i}@example.com"]
        )
        message.attach_alternative(html, "text/html")
        messages.append(message)
    return messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    before = rss_bytes()
    messages = build(args.n)
    holding = rss_bytes()
    peak = holding
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes())
            time.sleep(0.01)

    with SinkServer(process=True) as sink:
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        sent = EmailBackend(host=sink.host, port=sink.port).send_messages(messages)
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        if sent != args.n or sink.count != args.n:
            print(f"COUNT MISMATCH: sent {sent}, sink counted {sink.count}", file=sys.stderr)
            return 1
    mib = 1024 * 1024
    print(f"`.venv/bin/python bench/memory_bench.py -n {args.n}`\n")
    print("| messages | RSS before | holding the messages | peak while sending | peak / holding |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {args.n:,} | {before / mib:.0f} MiB | {holding / mib:.0f} MiB | {peak / mib:.0f} MiB"
        f" | {peak / holding:.2f}x |"
    )
    print(
        f"\nsent in {elapsed:.1f} s ({args.n / elapsed:,.0f} msg/s); target: peak <= 1.5x holding"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
