"""Read a stored message for display: decoded headers, bodies, attachments, the MIME tree.

Pure functions over the raw bytes, built on the standard library's ``email`` package with
``policy.default``. Caught mail is whatever a client sent, so nothing here raises on malformed
input: a header that does not parse is shown as found, a body in an unknown charset is decoded
with replacement characters, a part that cannot be decoded is given as its raw payload.

The work is bounded, since a hostile message can make the ``email`` package slow (about
0.15 ms a MIME part, seconds for a long structured header) or make it recurse until it fails:
a message beyond the limits below (too many parts, too deep, too many or too long header
fields) is not decoded at all. It is read as its top-level header fields (decoded word by
word) and shown raw, with a ``notice`` saying why; it is stored byte for byte all the same.
``read()`` does the work once; callers keep its result (see ``views.py``).
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser

from mailout.catcher import mime

__all__ = [
    "AttachmentInfo",
    "Details",
    "Parsed",
    "attachment",
    "by_content_id",
    "details",
    "parse",
    "read",
    "summarize",
]

# How much body text goes into the search index: enough for any real mail, bounded for 50 MB ones.
SEARCH_TEXT_LIMIT = 1_000_000
_ADDRESS_HEADERS = ("From", "To", "Cc", "Reply-To", "Sender")

# The limits of what is decoded (see the module docstring). Real mail stays far below each.
MAX_PARTS = 1000  # lines that start with "--" (every MIME part needs one): counted before parsing
MAX_DEPTH = 50  # nesting of multiparts and attached messages
MAX_FIELDS = 10_000  # header fields in the whole message, every part included
MAX_CONTENT_FIELD = 8192  # characters of one Content-* field (parsed again on every look)
# Characters of header values given to the structured header parser, per message; values past
# this budget are decoded word by word (RFC 2047) only, which is fast whatever their length.
STRUCTURED_BUDGET = 64 * 1024


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    index: int
    filename: str | None
    content_type: str
    size: int
    content_id: str | None
    inline: bool


@dataclass(frozen=True, slots=True)
class Details:
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[AttachmentInfo]
    # The MIME tree flattened in document order. Each entry: "path" ("" for the whole message,
    # then IMAP-style "1", "1.2", ...), "content_type", "size" (decoded bytes; a container's is
    # the sum of its children), "filename", "depth" (0 for the whole message), and, as
    # extensions, "content_id", "inline" and "attachment" (the AttachmentInfo.index or None).
    parts: list[dict[str, object]]
    # Set when the message was too complex to decode: why, for the reader. Only its top-level
    # header fields are given then; the raw source is the way to see the rest.
    notice: str | None = None


class Parsed:
    """A message read once: its ``details``, and its parts for attachment and cid downloads."""

    __slots__ = ("_attachments", "_leaves", "details", "search_text")

    def __init__(
        self,
        details: Details,
        attachments: list[Message],
        leaves: list[Message],
        search_text: str,
    ) -> None:
        self.details = details
        self.search_text = search_text
        self._attachments = attachments
        self._leaves = leaves

    def attachment(self, index: int) -> tuple[str, str | None, bytes] | None:
        """(content type, file name, decoded bytes) of the attachment numbered ``index``."""
        if not 0 <= index < len(self._attachments):
            return None
        info = self.details.attachments[index]
        return info.content_type, info.filename, mime.payload(self._attachments[index])

    def by_content_id(self, cid: str) -> tuple[str, bytes] | None:
        """(content type, decoded bytes) of the part whose Content-ID is ``cid``.

        ``cid`` may be given as in an HTML ``src`` (``cid:abc%40example.com``), bare, or in
        angle brackets; an exact match wins over a case-insensitive one.
        """
        wanted = mime.normalize_cid(cid)
        if not wanted:
            return None
        loose = None
        for part in self._leaves:
            found = mime.content_id(part)
            if found is None:
                continue
            if found == wanted:
                return part.get_content_type(), mime.payload(part)
            if loose is None and found.casefold() == wanted.casefold():
                loose = part
        if loose is not None:
            return loose.get_content_type(), mime.payload(loose)
        return None

    def summary(self) -> dict[str, object]:
        """What the store indexes: decoded From/To/Subject, attachment count, search text."""
        return {
            "from_header": self.header("From"),
            "to_header": self.header("To"),
            "subject": self.header("Subject"),
            "attachments": sum(1 for info in self.details.attachments if not info.inline),
            "search_text": self.search_text,
        }

    def header(self, name: str) -> str:
        """The decoded value of the first ``name`` field, "" when absent; unfolded."""
        wanted = name.lower()
        for found, value in self.details.headers:
            if found.lower() == wanted:
                return " ".join(value.split())
        return ""


def parse(raw: bytes) -> EmailMessage:
    """The message as a stdlib ``EmailMessage`` (policy.default); never raises."""
    return BytesParser(policy=email.policy.default).parsebytes(raw)


def read(raw: bytes) -> Parsed:
    """The message decoded for display, within the limits; never raises."""
    reason = _too_complex_to_parse(raw)
    if reason is None:
        try:
            message = parse(raw)
            reason = _too_complex(message)
            if reason is None:
                return _read(message)
        except RecursionError:
            reason = "its MIME structure nests too deeply to decode"
        except Exception:  # a last resort: the email package met something it cannot take
            reason = "the email package could not decode it"
    return _read_raw(raw, reason)


def summarize(raw: bytes) -> dict[str, object]:
    """What the store indexes: decoded From/To/Subject, attachment count, search text."""
    return read(raw).summary()


def details(raw: bytes) -> Details:
    return read(raw).details


def attachment(raw: bytes, index: int) -> tuple[str, str | None, bytes] | None:
    """(content type, file name, decoded bytes) of the attachment numbered ``index``."""
    return read(raw).attachment(index)


def by_content_id(raw: bytes, cid: str) -> tuple[str, bytes] | None:
    """(content type, decoded bytes) of the part whose Content-ID is ``cid`` (see Parsed)."""
    return read(raw).by_content_id(cid)


# -- limits --------------------------------------------------------------------------------------


def _too_complex_to_parse(raw: bytes) -> str | None:
    delimiters = raw.count(b"\n--") + raw.startswith(b"--")
    if delimiters > MAX_PARTS:
        return (
            f"it has {delimiters:,} lines that may start MIME parts, more than the "
            f"{MAX_PARTS:,} the catcher decodes"
        )
    return None


def _too_complex(message: Message) -> str | None:
    """Walk the parsed tree without recursion; say what is past a limit, if anything."""
    stack: list[tuple[Message, int]] = [(message, 0)]
    fields = 0
    while stack:
        part, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"its MIME parts nest more than {MAX_DEPTH} deep"
        items = list(part.raw_items())  # as parsed: nothing is decoded to count them
        fields += len(items)
        if fields > MAX_FIELDS:
            return f"it has more than {MAX_FIELDS:,} header fields"
        for name, value in items:
            if len(value) > MAX_CONTENT_FIELD and str(name).lower().startswith("content-"):
                return f"its {name} field is longer than {MAX_CONTENT_FIELD:,} characters"
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))
    return None


def _read(message: EmailMessage) -> Parsed:
    decode = _Decoder(message)
    text, html = mime.bodies(message)
    leaves, attachments = _leaves(message, text, html)
    index_of = {id(part): info.index for part, info in attachments}
    infos = {info.index: info for _, info in attachments}
    parts: list[dict[str, object]] = []
    _flatten(message, "", 0, parts, index_of, infos)
    headers = [(name, decode(name, value)) for name, value in mime.raw_items(message)]
    text_value, html_value = mime.text_of(text), mime.text_of(html)
    found = Details(
        headers=headers,
        text=text_value,
        html=html_value,
        attachments=[info for _, info in attachments],
        parts=parts,
    )
    parsed = Parsed(found, [part for part, _ in attachments], leaves, "")
    pieces = [parsed.header(name) for name in ("Subject", *_ADDRESS_HEADERS)]
    pieces.append(text_value or "")
    pieces.append(mime.strip_tags(html_value or ""))
    parsed.search_text = "\n".join(pieces)[:SEARCH_TEXT_LIMIT]
    return parsed


def _read_raw(raw: bytes, reason: str) -> Parsed:
    """Only the top-level header fields, decoded word by word, and a notice saying why."""
    try:
        top = BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
        items = mime.raw_items(top)[:MAX_FIELDS]
    except Exception:
        items = []
    headers = [(name, mime.decode_words(value)) for name, value in items]
    notice = f"This message is shown raw: {reason}. It is stored exactly as received."
    found = Details(headers=headers, text=None, html=None, attachments=[], parts=[], notice=notice)
    parsed = Parsed(found, [], [], "")
    pieces = [parsed.header(name) for name in ("Subject", *_ADDRESS_HEADERS)]
    parsed.search_text = "\n".join(pieces)[:SEARCH_TEXT_LIMIT]
    return parsed


class _Decoder:
    """Decodes header values, the first STRUCTURED_BUDGET characters with the structured parser
    (what policy.default shows) and the rest word by word (RFC 2047), fast at any length."""

    def __init__(self, message: Message) -> None:
        self.message = message
        self.budget = STRUCTURED_BUDGET

    def __call__(self, name: str, value: str) -> str:
        if len(value) > self.budget:
            return mime.decode_words(value)
        self.budget -= len(value)
        return mime.decode_header(self.message, name, value)


def _leaves(
    message: Message, text: Message | None, html: Message | None
) -> tuple[list[Message], list[tuple[Message, AttachmentInfo]]]:
    """Every leaf part; and those that are not the chosen bodies, as numbered attachments."""
    leaves = list(mime.walk_leaves(message))
    attachments: list[tuple[Message, AttachmentInfo]] = []
    for part in leaves:
        if part is text or part is html:
            continue
        if part is message and part.get_content_maintype() == "text":
            continue  # a single-part message whose body get_body() did not pick (e.g. text/csv)
        info = AttachmentInfo(
            index=len(attachments),
            filename=mime.filename(part),
            content_type=part.get_content_type(),
            size=len(mime.payload(part)),
            content_id=mime.content_id(part),
            inline=mime.is_inline(part),
        )
        attachments.append((part, info))
    return leaves, attachments


def _flatten(
    part: Message,
    path: str,
    depth: int,
    out: list[dict[str, object]],
    index_of: dict[int, int],
    infos: dict[int, AttachmentInfo],
) -> int:
    entry: dict[str, object] = {
        "path": path,
        "content_type": part.get_content_type(),
        "size": 0,
        "filename": mime.filename(part),
        "depth": depth,
        "content_id": mime.content_id(part),
        "inline": mime.is_inline(part),
        "attachment": index_of.get(id(part)),
    }
    out.append(entry)
    children = mime.children(part)
    if children:
        size = 0
        for number, child in enumerate(children, 1):
            child_path = f"{path}.{number}" if path else str(number)
            size += _flatten(child, child_path, depth + 1, out, index_of, infos)
    else:
        index = index_of.get(id(part))
        size = infos[index].size if index is not None else len(mime.payload(part))
    entry["size"] = size
    return size
