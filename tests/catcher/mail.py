"""Messages for the catcher's web tests: the bytes an application's mail arrives as."""

from __future__ import annotations

from email.message import MIMEPart

import mailout

PNG = (  # a valid 1x1 PNG
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


def raw_message(
    subject: str = "Hello",
    body: str = "Plain body",
    *,
    to: tuple[str, ...] = ("bob@example.com",),
    bcc: tuple[str, ...] = (),
    html: str | None = None,
    attachments: tuple[tuple[str, bytes, str], ...] = (),
    inline_png: str | None = None,
) -> bytes:
    message = mailout.EmailMultiAlternatives(
        subject, body, "Ana Lima <ana@example.com>", list(to), bcc=list(bcc)
    )
    if html is not None:
        message.attach_alternative(html, "text/html")
    for name, content, mimetype in attachments:
        message.attach(name, content, mimetype)
    if inline_png is not None:
        image = MIMEPart()
        image.set_content(
            PNG, maintype="image", subtype="png", disposition="inline", cid=f"<{inline_png}>"
        )
        message.attach(image)
        message.mixed_subtype = "related"
    return message.message().as_bytes()
