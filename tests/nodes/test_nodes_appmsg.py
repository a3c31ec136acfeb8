"""The application protocol codec, byte for byte, with no sockets.

The golden messages below are written by hand from the protocol's
description (the classic tutorial's, drawn in ``nodes.appmsg``'s
docstring), not produced by the code under test: a 2-byte big-endian header length, the JSON header
with its four keys in the tutorial's order and ``json.dumps`` spacing, then
the content. Emoji travel as raw UTF-8, not as \\u escapes.
"""

from __future__ import annotations

import itertools
import json
import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nodes import appmsg
from nodes.appmsg import Message, MessageReader, ProtocolError, answer, parse_header

RABBIT, RING, DOG, PAW, BALL = "\U0001f430", "\U0001f48d", "\U0001f436", "\U0001f43e", "\U0001f3d0"


def golden(header: bytes, content: bytes) -> bytes:
    assert json.loads(header)["content-length"] == len(content)  # the literal is self-consistent
    return struct.pack(">H", len(header)) + header + content


MORPHEUS_REQUEST = golden(
    b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 41}',
    b'{"action": "search", "value": "morpheus"}',
)
MORPHEUS_RESPONSE = golden(
    b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 43}',
    b'{"result": "Follow the white rabbit. \xf0\x9f\x90\xb0"}',
)
RING_RESPONSE = golden(
    b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 60}',
    b'{"result": "In the caves beneath the Misty Mountains. \xf0\x9f\x92\x8d"}',
)
DOG_REQUEST = golden(
    b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 37}',
    b'{"action": "search", "value": "\xf0\x9f\x90\xb6"}',
)
DOG_RESPONSE = golden(
    b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 37}',
    b'{"result": "\xf0\x9f\x90\xbe Playing ball! \xf0\x9f\x8f\x90"}',
)
BINARY_REQUEST = golden(
    b'{"byteorder": "little", "content-type": "binary/custom-client-binary-type", '
    b'"content-encoding": "binary", "content-length": 18}',
    b"hello there, world",
)
BINARY_RESPONSE = golden(
    b'{"byteorder": "little", "content-type": "binary/custom-server-binary-type", '
    b'"content-encoding": "binary", "content-length": 37}',
    b"First 10 bytes of request: hello ther",
)


def decode_one(data: bytes) -> Message:
    messages = MessageReader().feed(data)
    assert len(messages) == 1
    return messages[0]


def test_prefix_of_the_golden_request_is_its_header_length() -> None:
    assert MORPHEUS_REQUEST[:2] == b"\x00\x67"  # 103 header bytes, big-endian


@pytest.mark.parametrize(
    "built, expected",
    [
        (appmsg.search_request("morpheus", byteorder="little"), MORPHEUS_REQUEST),
        (appmsg.search_request(DOG, byteorder="little"), DOG_REQUEST),
        (appmsg.binary_request(b"hello there, world", byteorder="little"), BINARY_REQUEST),
    ],
)
def test_requests_are_encoded_exactly_as_described(built: bytes, expected: bytes) -> None:
    assert built == expected


@pytest.mark.parametrize(
    "request_bytes, expected",
    [
        (MORPHEUS_REQUEST, MORPHEUS_RESPONSE),
        (appmsg.search_request("ring"), RING_RESPONSE),
        (DOG_REQUEST, DOG_RESPONSE),
        (BINARY_REQUEST, BINARY_RESPONSE),
    ],
)
def test_answers_are_encoded_exactly_as_described(request_bytes: bytes, expected: bytes) -> None:
    assert answer(decode_one(request_bytes)) == in_host_byteorder(expected)


def in_host_byteorder(message: bytes) -> bytes:
    """A golden message as this host's server writes it: "byteorder" is the host's, all else is fixed."""
    (length,) = struct.unpack(">H", message[:2])
    head = message[2 : 2 + length].replace(b'"byteorder": "little"', f'"byteorder": "{sys.byteorder}"'.encode())
    return struct.pack(">H", len(head)) + head + message[2 + length :]


@pytest.mark.parametrize(
    "action, value, result",
    [
        ("search", "morpheus", f"Follow the white rabbit. {RABBIT}"),
        ("search", "ring", f"In the caves beneath the Misty Mountains. {RING}"),
        ("search", DOG, f"{PAW} Playing ball! {BALL}"),
        ("search", "neo", "No match for 'neo'."),
        ("search", "", "No match for ''."),
        ("search", None, "No match for 'None'."),
        ("search", [1, 2], "No match for '[1, 2]'."),
        ("find", "morpheus", "Error: invalid action 'find'."),
        (None, "morpheus", "Error: invalid action 'None'."),
    ],
)
def test_search_answers(action: object, value: object, result: str) -> None:
    request = appmsg.encode_json({"action": action, "value": value})
    response = decode_one(answer(decode_one(request)))
    assert response.content_type == "text/json"
    assert response.content_encoding == "utf-8"
    assert response.json() == {"result": result}


def test_binary_answer_with_a_short_request_and_any_bytes() -> None:
    for content in (b"", b"\x00\xff", bytes(range(256))):
        response = decode_one(answer(decode_one(appmsg.encode_message(content, "image/png", "binary"))))
        assert response.content_type == "binary/custom-server-binary-type"
        assert response.content_encoding == "binary"
        assert response.content == b"First 10 bytes of request: " + content[:10]


def test_a_request_may_use_another_unicode_encoding_and_byte_order() -> None:
    content = json.dumps({"action": "search", "value": "ring"}).encode("utf-16")
    request = appmsg.encode_message(content, "text/json", "utf-16", byteorder="big")
    assert decode_one(answer(decode_one(request))).json()["result"].startswith("In the caves")


@given(st.text(), st.text(), st.text(), st.binary(max_size=50))
def test_the_header_is_what_json_dumps_would_write(byteorder: str, kind: str, encoding: str, content: bytes) -> None:
    message = appmsg.encode_message(content, kind, encoding, byteorder=byteorder)
    header = json.dumps(
        {"byteorder": byteorder, "content-type": kind, "content-encoding": encoding, "content-length": len(content)},
        ensure_ascii=False,
    ).encode("utf-8")
    assert message == struct.pack(">H", len(header)) + header + content


@given(st.text())
def test_results_are_what_json_dumps_would_write(text: str) -> None:
    expected = appmsg.encode_message(json.dumps({"result": text}, ensure_ascii=False).encode(), "text/json", "utf-8")
    assert appmsg.encode_result(text) == expected


STREAM = MORPHEUS_REQUEST + BINARY_RESPONSE + DOG_REQUEST + appmsg.encode_message(b"", "x/empty", "binary")
EXPECTED = [decode_one(m) for m in (MORPHEUS_REQUEST, BINARY_RESPONSE, DOG_REQUEST)] + [
    Message({"byteorder": sys.byteorder, "content-type": "x/empty", "content-encoding": "binary",
             "content-length": 0}, b"")
]


def test_decoding_in_pieces_of_every_size() -> None:
    for size in range(1, len(STREAM) + 1):
        reader = MessageReader()
        decoded = []
        for start in range(0, len(STREAM), size):
            decoded += reader.feed(STREAM[start : start + size])
        assert decoded == EXPECTED, f"pieces of {size} bytes"
        assert not reader.partial


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_decoding_with_any_split_points(cuts: list[int]) -> None:
    reader = MessageReader()
    points = [0, *sorted(cuts), len(STREAM)]
    decoded = []
    for start, end in itertools.pairwise(points):
        decoded += reader.feed(STREAM[start:end])
    assert decoded == EXPECTED


def test_partial_tells_an_unfinished_message() -> None:
    reader = MessageReader()
    assert not reader.partial
    for byte in MORPHEUS_REQUEST[:-1]:
        assert reader.feed(bytes([byte])) == []
        assert reader.partial
    assert reader.feed(MORPHEUS_REQUEST[-1:]) == [decode_one(MORPHEUS_REQUEST)]
    assert not reader.partial


def header(**fields: object) -> bytes:
    base: dict[str, object] = {"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8",
                               "content-length": 0}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not MISSING}).encode()


MISSING = object()


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'"text"', "a JSON str, not an object"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"1" * 5000, "not valid JSON"),  # longer than Python converts to int by default
        (header(byteorder=MISSING), "lacks the required key 'byteorder'"),
        (header(**{"content-type": MISSING}), "lacks the required key 'content-type'"),
        (header(**{"content-encoding": MISSING}), "lacks the required key 'content-encoding'"),
        (header(**{"content-length": MISSING}), "lacks the required key 'content-length'"),
        (header(**{"content-length": -1}), "content-length -1 is negative"),
        (header(**{"content-length": 1.5}), "content-length 1.5 is not an integer"),
        (header(**{"content-length": "12"}), "content-length '12' is not an integer"),
        (header(**{"content-length": True}), "content-length True is not an integer"),
        (header(**{"content-length": None}), "content-length None is not an integer"),
        (header(**{"content-length": 2**70}), f"content-length {2**70} exceeds the limit of 1048576 bytes"),
        (header(**{"content-type": 7}), "'content-type' must be a string"),
        (header(byteorder=None), "'byteorder' must be a string"),
    ],
)
def test_bad_headers_are_refused_with_the_rule_they_break(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason.replace("(", r"\(").replace("[", r"\[")):
        parse_header(raw)
    with pytest.raises(ProtocolError):
        MessageReader().feed(struct.pack(">H", len(raw)) + raw)


def test_a_zero_header_length_is_refused_at_once() -> None:
    with pytest.raises(ProtocolError, match="header length is 0"):
        MessageReader().feed(b"\x00\x00")


def test_the_content_cap_is_checked_before_any_content_arrives() -> None:
    at_cap, over = header(**{"content-length": 1000}), header(**{"content-length": 1001})
    reader = MessageReader(max_content=1000)
    assert reader.feed(struct.pack(">H", len(at_cap)) + at_cap) == []  # accepted, waiting for content
    with pytest.raises(ProtocolError, match="exceeds the limit of 1000 bytes"):
        MessageReader(max_content=1000).feed(struct.pack(">H", len(over)) + over)


def test_the_reader_never_holds_more_than_one_capped_message() -> None:
    cap = 1 << 20
    raw = header(**{"content-length": cap})
    stream = struct.pack(">H", len(raw)) + raw + bytes(cap) + MORPHEUS_REQUEST
    reader, most, decoded = MessageReader(max_content=cap), 0, []
    for start in range(0, len(stream), 65536):
        decoded += reader.feed(stream[start : start + 65536])
        most = max(most, reader.buffered)
    assert [len(m.content) for m in decoded] == [cap, 41]
    assert most <= cap + 65536


def test_the_cache_of_known_headers_stays_small() -> None:
    for length in range(3 * appmsg.KNOWN_HEADERS_MAX):
        parse_header(header(**{"content-length": length}))
    assert len(appmsg._known_headers) <= appmsg.KNOWN_HEADERS_MAX
    assert parse_header(header(**{"content-length": 5}))["content-length"] == 5


@pytest.mark.parametrize(
    "content, encoding, reason",
    [
        (b"not json", "utf-8", "content is not valid JSON"),
        (b"\xff\xfe\xfd", "utf-8", "content is not valid utf-8"),
        (b'{"action": "search"}', "klingon", "unsupported content-encoding 'klingon'"),
        (b'{"action": "search"}', "rot13", "unsupported content-encoding 'rot13'"),
        (b"[1, 2, 3]", "utf-8", "must be a JSON object, not a list"),
        (b"[" * 5000 + b"]" * 5000, "utf-8", "nested too deeply"),
        (b'{"action": "search", "value": ' + b"[" * 900 + b"]" * 900 + b"}", "utf-8", "nested too deeply"),
    ],
)
def test_undecodable_text_json_requests_are_refused(content: bytes, encoding: str, reason: str) -> None:
    request = decode_one(appmsg.encode_message(content, "text/json", encoding))
    try:
        answer(request)
    except ProtocolError as exc:
        assert reason in str(exc)
    else:  # formatting a 900-deep list fits in some stacks: then it is answered, never a crash
        assert reason == "nested too deeply"
