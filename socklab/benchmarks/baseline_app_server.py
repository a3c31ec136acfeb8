"""The baseline for the application-server benchmark: the classic tutorial's server, as that tutorial builds it.

It stands for the application server of Real Python's "Socket Programming in
Python (Guide)" (its ``app-server.py`` with ``libserver.py``), rewritten here
to the same design, step for step, so that it costs what that server costs:

- one thread and one ``selectors.DefaultSelector`` loop; ``accept_wrapper``
  accepts a connection, makes it non-blocking and registers it for reading
  with a ``Message`` object of its own as the key's data;
- ``Message.process_events(mask)`` calls ``read()`` or ``write()``;
  ``read()`` receives (``_read``: ``recv(4096)`` into ``_recv_buffer``),
  then decodes as far as the buffer allows: ``process_protoheader`` (the
  2-byte big-endian header length, ``struct ">H"``), ``process_jsonheader``
  (a JSON header, decoded through ``io.TextIOWrapper`` as the tutorial's
  ``_json_decode`` does, its required keys checked) and ``process_request``
  (text/json content decoded the same way, anything else kept as bytes),
  which then switches the selector to writing (``_set_selector_events_mask``);
- ``write()`` creates the response once (``create_response``, from
  ``_create_response_json_content`` or ``_create_response_binary_content``,
  framed by ``_create_message`` with ``_json_encode``), sends from
  ``_send_buffer`` (``_write``), and closes the connection once the buffer
  is empty: one request and one response per connection;
- ``close()`` unregisters the socket and closes it; an exception while
  serving a connection is printed and closes that connection only.

The protocol is the project's (``nodes.appmsg``), which is the tutorial's
own: the same 2-byte prefix, the same four header keys ("byteorder",
"content-type", "content-encoding", "content-length"), the same actions
(``{"action": "search", "value": ...}`` answered from a dict,
``request_search``, else "No match for ..."; any other action answered
"Error: invalid action ..."), the same binary reply ("First 10 bytes of
request: ..."). So nothing had to be adapted: the field names, types and
answers are those of the tutorial, and ``python3 -m nodes.app client``
works against it unchanged.

The two departures, neither of which changes the work per request: the
command line is the benchmark's (``serve --bind ADDR --port N`` instead of
``HOST PORT``), and ``--quiet`` leaves out the tutorial's four ``print``
lines per connection ("Accepted connection from", "Received request",
"Sending", "Closing connection to"), the way the project's server is run
with ``--quiet`` under load: both are then measured without their logging.
Standard library only: it runs on a lab host as a graded implementation would.

    python3 baseline_app_server.py serve --bind 0.0.0.0 --port 7003 [--quiet]
"""

from __future__ import annotations

import argparse
import io
import json
import selectors
import socket
import struct
import sys
import traceback
from typing import Any

request_search = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}

VERBOSE = True  # the tutorial prints a line at each step of a connection; --quiet turns that off


def say(*words: Any) -> None:
    if VERBOSE:
        print(*words)


class Message:
    """One connection's state: what has been received and decoded so far, then the response still to send."""

    def __init__(self, selector: selectors.BaseSelector, sock: socket.socket, addr: Any) -> None:
        self.selector = selector
        self.sock = sock
        self.addr = addr
        self._recv_buffer = b""
        self._send_buffer = b""
        self._jsonheader_len: int | None = None
        self.jsonheader: dict[str, Any] | None = None
        self.request: Any = None
        self.response_created = False

    def _set_selector_events_mask(self, mode: str) -> None:
        """Watch the socket for reading ("r"), writing ("w") or both ("rw")."""
        if mode == "r":
            events = selectors.EVENT_READ
        elif mode == "w":
            events = selectors.EVENT_WRITE
        elif mode == "rw":
            events = selectors.EVENT_READ | selectors.EVENT_WRITE
        else:
            raise ValueError(f"Invalid events mask mode {mode!r}.")
        self.selector.modify(self.sock, events, data=self)

    def _read(self) -> None:
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            pass  # not ready after all: the selector will say when
        else:
            if data:
                self._recv_buffer += data
            else:
                raise RuntimeError("Peer closed.")

    def _write(self) -> None:
        if self._send_buffer:
            say("Sending", repr(self._send_buffer), "to", self.addr)
            try:
                sent = self.sock.send(self._send_buffer)
            except BlockingIOError:
                pass
            else:
                self._send_buffer = self._send_buffer[sent:]
                if sent and not self._send_buffer:  # the whole response is out: one per connection
                    self.close()

    def _json_encode(self, obj: Any, encoding: str) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode(encoding)

    def _json_decode(self, json_bytes: bytes, encoding: str) -> Any:
        tiow = io.TextIOWrapper(io.BytesIO(json_bytes), encoding=encoding, newline="")
        obj = json.load(tiow)
        tiow.close()
        return obj

    def _create_message(self, *, content_bytes: bytes, content_type: str, content_encoding: str) -> bytes:
        jsonheader = {
            "byteorder": sys.byteorder,
            "content-type": content_type,
            "content-encoding": content_encoding,
            "content-length": len(content_bytes),
        }
        jsonheader_bytes = self._json_encode(jsonheader, "utf-8")
        message_hdr = struct.pack(">H", len(jsonheader_bytes))
        return message_hdr + jsonheader_bytes + content_bytes

    def _create_response_json_content(self) -> dict[str, Any]:
        action = self.request.get("action")
        if action == "search":
            query = self.request.get("value")
            answer = request_search.get(query) or f"No match for '{query}'."
            content = {"result": answer}
        else:
            content = {"result": f"Error: invalid action '{action}'."}
        content_encoding = "utf-8"
        return {
            "content_bytes": self._json_encode(content, content_encoding),
            "content_type": "text/json",
            "content_encoding": content_encoding,
        }

    def _create_response_binary_content(self) -> dict[str, Any]:
        return {
            "content_bytes": b"First 10 bytes of request: " + self.request[:10],
            "content_type": "binary/custom-server-binary-type",
            "content_encoding": "binary",
        }

    def process_events(self, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            self.read()
        if mask & selectors.EVENT_WRITE:
            self.write()

    def read(self) -> None:
        self._read()
        if self._jsonheader_len is None:
            self.process_protoheader()
        if self._jsonheader_len is not None and self.jsonheader is None:
            self.process_jsonheader()
        if self.jsonheader and self.request is None:
            self.process_request()

    def write(self) -> None:
        if self.request and not self.response_created:
            self.create_response()
        self._write()

    def close(self) -> None:
        say("Closing connection to", self.addr)
        try:
            self.selector.unregister(self.sock)
        except Exception as e:  # noqa: BLE001 - the tutorial reports and carries on closing
            say(f"Error: selector.unregister() exception for {self.addr}: {e!r}")
        try:
            self.sock.close()
        except OSError as e:
            say(f"Error: socket.close() exception for {self.addr}: {e!r}")

    def process_protoheader(self) -> None:
        hdrlen = 2
        if len(self._recv_buffer) >= hdrlen:
            self._jsonheader_len = struct.unpack(">H", self._recv_buffer[:hdrlen])[0]
            self._recv_buffer = self._recv_buffer[hdrlen:]

    def process_jsonheader(self) -> None:
        hdrlen = self._jsonheader_len or 0
        if len(self._recv_buffer) >= hdrlen:
            self.jsonheader = self._json_decode(self._recv_buffer[:hdrlen], "utf-8")
            self._recv_buffer = self._recv_buffer[hdrlen:]
            for reqhdr in ("byteorder", "content-length", "content-type", "content-encoding"):
                if reqhdr not in self.jsonheader:
                    raise ValueError(f"Missing required header '{reqhdr}'.")

    def process_request(self) -> None:
        assert self.jsonheader is not None
        content_len = self.jsonheader["content-length"]
        if not len(self._recv_buffer) >= content_len:
            return
        data = self._recv_buffer[:content_len]
        self._recv_buffer = self._recv_buffer[content_len:]
        if self.jsonheader["content-type"] == "text/json":
            encoding = self.jsonheader["content-encoding"]
            self.request = self._json_decode(data, encoding)
            say("Received request", repr(self.request), "from", self.addr)
        else:
            self.request = data
            say(f"Received {self.jsonheader['content-type']} request from {self.addr}")
        self._set_selector_events_mask("w")  # the request is whole: now the response

    def create_response(self) -> None:
        assert self.jsonheader is not None
        if self.jsonheader["content-type"] == "text/json":
            response = self._create_response_json_content()
        else:
            response = self._create_response_binary_content()
        message = self._create_message(**response)
        self.response_created = True
        self._send_buffer += message


def accept_wrapper(sel: selectors.BaseSelector, sock: socket.socket) -> None:
    conn, addr = sock.accept()
    say("Accepted connection from", addr)
    conn.setblocking(False)
    message = Message(sel, conn, addr)
    sel.register(conn, selectors.EVENT_READ, data=message)


def main() -> None:
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["serve"])
    parser.add_argument("--bind", default="")
    parser.add_argument("--port", type=int, default=65432)
    parser.add_argument("--quiet", action="store_true", help="leave out the tutorial's print lines")
    args = parser.parse_args()
    VERBOSE = not args.quiet

    sel = selectors.DefaultSelector()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.bind, args.port))
    lsock.listen()
    say("Listening on", (args.bind, args.port))
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, data=None)
    try:
        while True:
            events = sel.select(timeout=None)
            for key, mask in events:
                if key.data is None:
                    accept_wrapper(sel, key.fileobj)  # type: ignore[arg-type]
                else:
                    message = key.data
                    try:
                        message.process_events(mask)
                    except Exception:  # noqa: BLE001 - one connection's failure must not end the server
                        print(f"Main: Error: Exception for {message.addr}:\n{traceback.format_exc()}")
                        message.close()
    except KeyboardInterrupt:
        say("Caught keyboard interrupt, exiting")
    finally:
        sel.close()


if __name__ == "__main__":
    main()
