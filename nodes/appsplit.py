"""A hostile client of the application protocol: it writes raw bytes, split and cut as a server must survive.

    python -m nodes.appsplit --to 198.18.0.2:65432 --case header-bytewise
    python -m nodes.appsplit --to 198.18.0.2:65432 --case two-in-one --value morpheus
    python -m nodes.appsplit --to 198.18.0.2:65432 --case half-then-fin
    python -m nodes.appsplit --to 198.18.0.2:65432 --case long-prefix --timeout 15
    python -m nodes.appsplit --to 198.18.0.2:65432 --case not-json

The protocol is ``nodes.appmsg``'s (the classic tutorial's): a 2-byte
big-endian length, a JSON header of that length, then content-length bytes
of content. ``nodes.app``'s client always writes whole, well-formed
requests; this one writes exactly the bytes of one case, with TCP_NODELAY
so that each send() leaves as a segment of its own, and pauses between the
sends, so that the server's recv() gets the pieces as they were cut:

  header-bytewise  a search request whose 2-byte prefix and JSON header go
                   one byte per send(), ``--pause`` apart; the content then
                   in one send(). A correct server answers it whole.
  two-in-one       two search requests (``--value``, then ``--second``) in
                   one sendall(), so one segment: the server's first recv()
                   returns both. A server of one request per connection (the
                   classic libserver) answers the first, and only it, whole.
  half-then-fin    a request cut halfway through its content, then
                   shutdown(SHUT_WR): the client's FIN in the middle of a
                   message. There is nothing to answer: the server closes.
  long-prefix      a prefix that announces a header 1,000 bytes long, then
                   only a whole (shorter) header and content, and no FIN.
                   The server cannot know the rest will never come: it waits
                   until its own deadline, then closes.
  not-json         a prefix and exactly that many bytes of a header that is
                   not JSON. The server closes at once, without an answer.

After writing, the client reads until the server closes, resets, or
``--timeout`` passes, and decodes every whole response it received.

Result (one JSON object on stdout), keys:
  outcome         ok when at least one whole, well-formed response came back;
                  else how the connection ended: closed (end of file, no
                  response), reset, timeout; mismatch for bytes that are not
                  a response; refused, unresolved ... when connecting failed
  errno, detail   errno name and words of a failure, or null
  target          the server as given with --to
  local, peer     the connection's two addresses (null if it never connected)
  case            the case written
  written         how, in words: "108 sends of 1 byte, 0.01 s apart, then one of 29 bytes"
  sends           send() calls made
  bytes_sent      bytes written
  responses       whole responses received
  results         each response's result (content["result"] for text/json)
  result          the first response's result, or null
  bytes_received  every byte received
  leftover        bytes received after the last whole response (part of one)
  end             how the connection ended after the writing: eof, reset or timeout
  end_ms          milliseconds from the last send() to that end
  elapsed_ms      the whole run
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import time
from typing import Any

from nodes import cli
from nodes.appmsg import JSON_TYPE, PREFIX, Message, MessageReader, ProtocolError, search_request
from nodes.endpoints import format_sockaddr
from nodes.outcomes import Outcome

CASES = ("header-bytewise", "two-in-one", "half-then-fin", "long-prefix", "not-json")
ANNOUNCED = 1000  # long-prefix: the header length the prefix claims, more than is ever sent
NOT_JSON = b"this is not JSON {"
RECV_SIZE = 65536


def main(argv: list[str] | None = None) -> int:
    return cli.main(parser(), argv, client)


def pieces(case: str, first: str, second: str) -> tuple[list[bytes], bool]:
    """The bytes of ``case``, as the send() calls that write them, and whether a FIN follows."""
    request = search_request(first)
    (header_length,) = PREFIX.unpack_from(request)
    framing = PREFIX.size + header_length  # the prefix and the header; the content follows
    if case == "header-bytewise":
        return [request[i : i + 1] for i in range(framing)] + [request[framing:]], False
    if case == "two-in-one":
        return [request + search_request(second)], False
    if case == "half-then-fin":
        content = len(request) - framing
        return [request[: framing + content // 2]], True
    if case == "long-prefix":
        return [PREFIX.pack(ANNOUNCED) + request[PREFIX.size :]], False
    return [PREFIX.pack(len(NOT_JSON)) + NOT_JSON], False  # not-json


def written(sends: list[bytes], pause: float, fin: bool) -> str:
    """How the bytes were written, in words, for the result."""
    if len(sends) == 1:
        words = f"one send of {len(sends[0])} bytes"
    else:
        words = f"{len(sends) - 1} sends of 1 byte, {pause:g} s apart, then one of {len(sends[-1])} bytes"
    return words + ("; then FIN" if fin else "")


def client(args: argparse.Namespace) -> dict[str, Any]:
    """Write one case's bytes to the server, then report everything that came back, as one JSON result."""
    sends, fin = pieces(args.case, args.value, args.second)
    result: dict[str, Any] = {
        "outcome": None, "errno": None, "detail": None, "target": str(args.to), "local": None, "peer": None,
        "case": args.case, "written": written(sends, args.pause, fin), "sends": 0, "bytes_sent": 0,
        "responses": 0, "results": [], "result": None, "bytes_received": 0, "leftover": 0,
        "end": None, "end_ms": None,
    }
    try:
        sock = cli.connect(args.to, args.timeout)
    except OSError as exc:
        return result | cli.failure(exc)
    with sock:
        result["local"] = format_sockaddr(sock.getsockname())
        result["peer"] = format_sockaddr(sock.getpeername())
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each send() leaves at once, in its own segment
        reader = MessageReader()
        try:
            for number, piece in enumerate(sends):
                if number:
                    time.sleep(args.pause)  # the server's recv() returns what came so far
                sock.sendall(piece)
                result["sends"] += 1
                result["bytes_sent"] += len(piece)
            if fin:
                sock.shutdown(socket.SHUT_WR)  # FIN: the client will send nothing more, mid-message
        except OSError as exc:
            return result | cli.failure(exc)
        last_send = time.perf_counter()
        ending = receive(sock, reader, result, args.timeout)
        result["end_ms"] = cli.elapsed_ms(last_send)
    result["leftover"] = reader.buffered
    return result | verdict(result, ending)


def receive(sock: socket.socket, reader: MessageReader, result: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Read until end of file, a reset or ``timeout``; note each whole response. Returns how it ended."""
    sock.settimeout(timeout)
    while True:
        try:
            data = sock.recv(RECV_SIZE)
        except OSError as exc:
            failed = cli.failure(exc)
            result["end"] = failed["outcome"]  # reset or timeout
            return failed
        if not data:
            result["end"] = "eof"
            return {"outcome": Outcome.CLOSED.value, "errno": None,
                    "detail": "the server closed the connection (end of file)"}
        result["bytes_received"] += len(data)
        try:
            for response in reader.feed(data):
                result["responses"] += 1
                result["results"].append(result_of(response))
        except ProtocolError as exc:
            result["end"] = "eof"
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            return {"outcome": Outcome.MISMATCH.value, "errno": None, "detail": f"not a response: {exc}"}


def result_of(response: Message) -> Any:
    """A response's result, as ``nodes.app``'s client reports it: content["result"] for text/json."""
    if response.content_type == JSON_TYPE:
        with contextlib.suppress(ProtocolError):
            value = response.json()
            return value.get("result") if isinstance(value, dict) else value
    return response.content.decode("utf-8", "backslashreplace")


def verdict(result: dict[str, Any], ending: dict[str, Any]) -> dict[str, Any]:
    """ok once a whole response came; otherwise how the connection ended (closed, reset, timeout, mismatch)."""
    if result["results"]:
        result["result"] = result["results"][0]
    if ending["outcome"] == Outcome.MISMATCH.value or not result["responses"]:
        return ending
    return {"outcome": Outcome.OK.value, "errno": None,
            "detail": f"{result['responses']} whole response(s), then {result['end']}"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nodes.appsplit", description=(__doc__ or "").split("\n\n")[0])
    cli.add_client_arguments(p, 5.0)
    p.add_argument("--case", choices=CASES, required=True,
                   help="the bytes to write: header-bytewise (prefix and header a byte per send), two-in-one (two "
                   "requests in one send), half-then-fin (half a request, then FIN), long-prefix (a prefix "
                   "announcing more header than follows), not-json (a header that is not JSON)")
    p.add_argument("--value", default="morpheus", metavar="TEXT",
                   help="what the (first) request searches for (default: morpheus)")
    p.add_argument("--second", default="ring", metavar="TEXT",
                   help="two-in-one: what the second request searches for (default: ring)")
    p.add_argument("--pause", type=cli.non_negative_seconds, default=0.01, metavar="S",
                   help="header-bytewise: seconds between two sends (default: 0.01)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
