"""Quoted-printable written with bytes operations: decodes to its input, lines within 76, and the
same choice of encoding as the standard library's pure-Python measure."""

from __future__ import annotations

import binascii
from email import quoprimime

from hypothesis import given
from hypothesis import strategies as st

from mailout._wire.body import _QP_KEEP_CRLF, _prefers_base64, quoted_printable, text_body

# Few distinct characters (the replace path) and any text at all (many: the b2a_qp path).
_FEW = st.text(alphabet=st.sampled_from(list("ab =\t.€é\x01\x7f-")), max_size=300)
_TEXTS = st.lists(st.one_of(_FEW, st.text(max_size=300)), min_size=1, max_size=15)


def _canonical(lines: list[str]) -> tuple[list[bytes], bytes]:
    split = "\n".join(lines).encode("utf-8", "surrogatepass").splitlines()
    return split, b"\r\n".join(split) + b"\r\n"


@given(_TEXTS)
def test_quoted_printable_decodes_to_its_input_in_short_crlf_lines(lines: list[str]) -> None:
    _, canonical = _canonical(lines)
    encoded = quoted_printable(canonical)
    assert binascii.a2b_qp(encoded) == canonical
    assert encoded.count(b"\r") == encoded.count(b"\n") == encoded.count(b"\r\n")
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert all(not line.endswith((b" ", b"\t")) for line in encoded.split(b"\r\n"))


@given(_TEXTS)
def test_the_choice_of_base64_is_the_standard_librarys(lines: list[str]) -> None:
    split, _ = _canonical(lines)
    sniff = b"\r\n".join(split[:10]) + b"\r\n"
    qp_size = len(quoprimime.body_encode(sniff.decode("latin-1"), 78))
    whole = b"\r\n".join(split) + b"\r\n"
    unsafe = len(whole.translate(None, _QP_KEEP_CRLF))
    assert _prefers_base64(split[:10], unsafe) == (qp_size > len(binascii.b2a_base64(sniff)))


@given(_TEXTS)
def test_quoted_printable_with_the_lines_given_decodes_to_its_input(lines: list[str]) -> None:
    # text_body() passes the lines it already split: they must not be reused once escaped.
    split, canonical = _canonical(lines)
    unsafe = canonical.translate(None, _QP_KEEP_CRLF)
    assert binascii.a2b_qp(quoted_printable(canonical, split, unsafe)) == canonical


def test_an_equals_sign_alone_to_escape_is_escaped() -> None:
    # "=" the only byte that needs escaping, in a line long enough for quoted-printable: it
    # went out bare, and "=" at a line's end then read as a soft break (the sign was lost).
    for text in ["x" * 80 + "=", "a=b " + "y" * 90, "key=value\n" + "z" * 100]:
        cte, body = text_body(text, "utf-8")
        assert cte == "quoted-printable"
        assert b"=3D" in body
        assert binascii.a2b_qp(body).decode() == text.replace("\n", "\r\n") + "\r\n"


def test_escapes_are_never_split_by_a_soft_break() -> None:
    for width in range(70, 80):
        text = "a" * width + "é=" * 3 + "b" * 200
        cte, body = text_body(text, "utf-8")
        assert cte == "quoted-printable"
        assert binascii.a2b_qp(body).decode() == text.replace("\n", "\r\n") + "\r\n"
        assert all(len(line) <= 76 for line in body.split(b"\r\n"))


@given(_TEXTS)
def test_every_text_body_decodes_to_the_canonical_text(lines: list[str]) -> None:
    text = "\n".join(lines)
    try:
        expected = _canonical(lines)[1].decode("utf-8")
    except UnicodeDecodeError:  # a lone surrogate: not text that can be sent
        return
    cte, body = text_body(text, "utf-8")
    decoded = {
        "quoted-printable": binascii.a2b_qp,
        "base64": binascii.a2b_base64,
    }.get(cte, lambda b: b)(body)
    assert decoded.decode("utf-8") == expected
    assert all(len(line) <= 78 for line in body.split(b"\r\n"))
