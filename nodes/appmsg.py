"""The application protocol's messages: built, parsed and answered, with no sockets in sight.

Wire-compatible with the classic tutorial's protocol. Each message is

    +--------+----------------------------+---------------------------+
    | 2 bytes| header: JSON, UTF-8        | content                   |
    | length | byteorder, content-type,   | content-length bytes      |
    | (>H)   | content-encoding,          |                           |
    |        | content-length             |                           |
    +--------+----------------------------+---------------------------+

A fixed-size prefix says how long the variable-size header is, and the
header says how long the content is: that is how a reader of a byte stream
finds where one message ends. ``MessageReader`` does exactly that and
nothing else, so it can be fed whatever ``recv`` returned, one byte or a
megabyte at a time, and be tested without a network.

Every number a peer sends is checked before it is believed: a header of
length 0, bytes that are not UTF-8 or not JSON, a missing key, or a
content-length that is negative, not an integer, or larger than the
reader's cap all raise ``ProtocolError`` before anything is buffered for
them. A reader therefore never holds more than the 2 + 65,535 header bytes
plus ``max_content`` content bytes of one message.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass
from json.encoder import (
    encode_basestring,  # the escaper json.dumps(..., ensure_ascii=False) uses
)
from typing import Any

PREFIX = struct.Struct(">H")
REQUIRED_KEYS = ("byteorder", "content-type", "content-encoding", "content-length")
DEFAULT_MAX_CONTENT = 1 << 20

JSON_TYPE = "text/json"
CLIENT_BINARY_TYPE = "binary/custom-client-binary-type"
SERVER_BINARY_TYPE = "binary/custom-server-binary-type"
BINARY_PREFIX = b"First 10 bytes of request: "

ANSWERS = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}

# Content encodings accepted for text/json. A fixed list, because Python's
# codec machinery caches every name it is asked about, including unknown
# ones: letting peers choose any name would let them grow our memory.
TEXT_ENCODINGS = {
    "utf-8": "utf-8", "utf8": "utf-8", "utf-16": "utf-16", "utf-16-le": "utf-16-le", "utf-16-be": "utf-16-be",
    "utf-32": "utf-32", "utf-32-le": "utf-32-le", "utf-32-be": "utf-32-be",
    "ascii": "ascii", "us-ascii": "ascii", "latin-1": "latin-1", "iso-8859-1": "latin-1",
}


class ProtocolError(ValueError):
    """The bytes are not a message of this protocol; the reason says which rule they broke."""


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded message: its validated header and its raw content."""

    header: dict[str, Any]
    content: bytes

    @property
    def content_type(self) -> str:
        return self.header["content-type"]

    @property
    def content_encoding(self) -> str:
        return self.header["content-encoding"]

    def json(self) -> Any:
        """The content as the JSON value it encodes (for text/json)."""
        return decode_json(self.content, self.content_encoding)

    def text(self) -> str:
        """The content for people: JSON decoded, anything else as UTF-8 with escapes."""
        if self.content_type == JSON_TYPE:
            return json.dumps(self.json(), ensure_ascii=False)
        return self.content.decode("utf-8", "backslashreplace")


def encode_message(
    content: bytes, content_type: str, content_encoding: str, *, byteorder: str = sys.byteorder
) -> bytes:
    """Frame content: prefix, header, content, in the classic tutorial's exact JSON layout.

    The header always has the same four keys, so it is formatted directly:
    the bytes are those of ``json.dumps(header, ensure_ascii=False)``, at a
    fraction of the cost, which a server answering thousands of requests a
    second notices.
    """
    header = (
        f'{{"byteorder": {encode_basestring(byteorder)}, "content-type": {encode_basestring(content_type)}, '
        f'"content-encoding": {encode_basestring(content_encoding)}, "content-length": {len(content)}}}'
    ).encode()
    return PREFIX.pack(len(header)) + header + content


def encode_json(value: Any, *, byteorder: str = sys.byteorder) -> bytes:
    content = json.dumps(value, ensure_ascii=False).encode()
    return encode_message(content, JSON_TYPE, "utf-8", byteorder=byteorder)


def encode_result(result: str, *, byteorder: str = sys.byteorder) -> bytes:
    """A search response: ``{"result": ...}`` as text/json (formatted directly, like the header)."""
    content = f'{{"result": {encode_basestring(result)}}}'.encode()
    return encode_message(content, JSON_TYPE, "utf-8", byteorder=byteorder)


def search_request(value: Any, action: str = "search", *, byteorder: str = sys.byteorder) -> bytes:
    """What the classic client sends for ``action value``."""
    return encode_json({"action": action, "value": value}, byteorder=byteorder)


def binary_request(data: bytes, *, byteorder: str = sys.byteorder) -> bytes:
    return encode_message(data, CLIENT_BINARY_TYPE, "binary", byteorder=byteorder)


def decode_json(content: bytes, encoding: str) -> Any:
    codec = TEXT_ENCODINGS.get(encoding.strip().lower().replace("_", "-"))
    if codec is None:
        raise ProtocolError(f"unsupported content-encoding {shorten(encoding)} for text/json")
    try:
        return json.loads(content.decode(codec))
    except UnicodeDecodeError:
        raise ProtocolError(f"content is not valid {codec}") from None
    except RecursionError:
        raise ProtocolError("content JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise ProtocolError(f"content is not valid JSON ({exc})") from None


_known_headers: dict[bytes, dict[str, Any]] = {}  # small valid headers seen before: clients repeat theirs
KNOWN_HEADERS_MAX, KNOWN_HEADER_SIZE = 512, 256


def parse_header(raw: bytes | bytearray, max_content: int = DEFAULT_MAX_CONTENT) -> dict[str, Any]:
    """Decode and check a header; raise ProtocolError naming the first rule it breaks.

    The result must not be modified: a header seen before is returned from
    a small cache instead of being decoded again.
    """
    raw = bytes(raw)
    header = _known_headers.get(raw)
    if header is None:
        header = _checked_header(raw)
        if len(raw) <= KNOWN_HEADER_SIZE:
            if len(_known_headers) >= KNOWN_HEADERS_MAX:
                _known_headers.clear()
            _known_headers[raw] = header
    length = header["content-length"]
    if length > max_content:
        raise ProtocolError(f"content-length {length} exceeds the limit of {max_content} bytes")
    return header


def _checked_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError("header is not valid UTF-8") from None
    except RecursionError:
        raise ProtocolError("header JSON is nested too deeply") from None
    except ValueError:
        raise ProtocolError("header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"header is a JSON {type(header).__name__}, not an object")
    for key in REQUIRED_KEYS:
        if key not in header:
            raise ProtocolError(f"header lacks the required key {key!r}")
    for key in ("byteorder", "content-type", "content-encoding"):
        if not isinstance(header[key], str):
            raise ProtocolError(f"header key {key!r} must be a string")
    length = header["content-length"]
    if not isinstance(length, int) or isinstance(length, bool):
        raise ProtocolError(f"content-length {shorten(length)} is not an integer")
    if length < 0:
        raise ProtocolError(f"content-length {length} is negative")
    return header


class MessageReader:
    """Decode messages from a byte stream delivered in pieces of any size.

    ``feed`` returns every message completed by the new bytes (usually none or
    one) and raises ProtocolError as soon as the bytes cannot be a message;
    after an error the reader must be discarded, since the stream has lost
    its framing.
    """

    def __init__(self, max_content: int = DEFAULT_MAX_CONTENT) -> None:
        self.max_content = max_content
        self._buffer = bytearray()
        self._header: dict[str, Any] | None = None

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages = []
        while (message := self._next()) is not None:
            messages.append(message)
        return messages

    def feed_first(self, data: bytes) -> Message | None:
        """``feed`` for a reader that wants one message: the first, once it is complete, else None.

        What follows that message is neither parsed nor judged: a server that
        answers one request per connection ignores whatever comes after it.
        """
        self._buffer += data
        return self._next()

    @property
    def partial(self) -> bool:
        """True while part of a message has arrived but not all of it."""
        return self._header is not None or bool(self._buffer)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def _next(self) -> Message | None:
        buffer = self._buffer
        if self._header is None:
            if len(buffer) < PREFIX.size:
                return None
            (length,) = PREFIX.unpack_from(buffer)
            if length == 0:
                raise ProtocolError("header length is 0")
            end = PREFIX.size + length
            if len(buffer) < end:
                return None
            self._header = parse_header(buffer[PREFIX.size : end], self.max_content)
            del buffer[:end]
        size = self._header["content-length"]
        if len(buffer) < size:
            return None
        message = Message(self._header, bytes(buffer[:size]))
        del buffer[:size]
        self._header = None
        return message


_known_responses = {query: encode_result(text) for query, text in ANSWERS.items()}


def search(action: Any, value: Any) -> str:
    """The answer text for a text/json request, as the classic server words it."""
    if action != "search":
        return f"Error: invalid action '{action}'."
    known = ANSWERS.get(value) if isinstance(value, str) else None
    return known or f"No match for '{value}'."


def answer(request: Message) -> bytes:
    """The complete response to a request: JSON search results, or the binary reply."""
    if request.content_type == JSON_TYPE:
        query = request.json()
        if not isinstance(query, dict):
            raise ProtocolError(f"a text/json request must be a JSON object, not a {type(query).__name__}")
        action, value = query.get("action"), query.get("value")
        if action == "search" and isinstance(value, str) and value in _known_responses:
            return _known_responses[value]
        try:
            result = search(action, value)
        except RecursionError:  # formatting a value nested nearly as deep as json allows
            raise ProtocolError("request value is nested too deeply") from None
        return encode_result(result)
    return encode_message(BINARY_PREFIX + request.content[:10], SERVER_BINARY_TYPE, "binary")


def describe(request: Message) -> str:
    """A short account of a request for a log line."""
    if request.content_type == JSON_TYPE:
        try:
            query = request.json()
        except ProtocolError:
            return "text/json (undecodable)"
        if isinstance(query, dict):
            return f"{shorten(query.get('action'))} {shorten(query.get('value'))}"
    return f"{shorten(request.content_type)} ({len(request.content)} bytes)"


def shorten(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
