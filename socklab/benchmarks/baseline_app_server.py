"""The baseline for the application-server benchmark: a straightforward server for the same protocol.

Written the way the classic tutorial's multi-connection server is: one
thread, one ``selectors`` loop, one Message object per connection that reads
into a buffer, decodes the 2-byte length, then the JSON header, then the
content, builds the answer and writes it out, re-registering for writing
and closing when done. Correct, readable, nothing tuned. Standard library
only: it runs on a lab host as a graded implementation would.

    python3 baseline_app_server.py serve --bind 0.0.0.0 --port 7002
"""

import argparse
import io
import json
import selectors
import socket
import struct
from typing import Any

ANSWERS = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}


class Message:
    def __init__(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        self.selector, self.sock = selector, sock
        self._recv_buffer, self._send_buffer = b"", b""
        self._jsonheader_len: int | None = None
        self.jsonheader: Any = None  # the decoded JSON header, as the tutorial keeps it
        self.request: Any = None  # the decoded JSON request, or the raw bytes of a binary one
        self.response_created = False

    def process_events(self, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            self.read()
        if mask & selectors.EVENT_WRITE:
            self.write()

    def read(self) -> None:
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        if not data:
            raise RuntimeError("peer closed")
        self._recv_buffer += data
        if self._jsonheader_len is None:
            self.process_protoheader()
        if self._jsonheader_len is not None and self.jsonheader is None:
            self.process_jsonheader()
        if self.jsonheader and self.request is None:
            self.process_request()

    def write(self) -> None:
        if self.request and not self.response_created:
            self.create_response()
        if self._send_buffer:
            try:
                sent = self.sock.send(self._send_buffer)
            except BlockingIOError:
                return
            self._send_buffer = self._send_buffer[sent:]
            if sent and not self._send_buffer:
                self.close()

    def process_protoheader(self) -> None:
        if len(self._recv_buffer) >= 2:
            self._jsonheader_len = struct.unpack(">H", self._recv_buffer[:2])[0]
            self._recv_buffer = self._recv_buffer[2:]

    def process_jsonheader(self) -> None:
        length = self._jsonheader_len or 0
        if len(self._recv_buffer) >= length:
            wrapper = io.TextIOWrapper(io.BytesIO(self._recv_buffer[:length]), encoding="utf-8", newline="")
            self.jsonheader = json.load(wrapper)
            wrapper.close()
            self._recv_buffer = self._recv_buffer[length:]
            for key in ("byteorder", "content-length", "content-type", "content-encoding"):
                if key not in self.jsonheader:
                    raise ValueError(f"missing required header '{key}'")

    def process_request(self) -> None:
        length = self.jsonheader["content-length"]
        if len(self._recv_buffer) < length:
            return
        data, self._recv_buffer = self._recv_buffer[:length], self._recv_buffer[length:]
        if self.jsonheader["content-type"] == "text/json":
            wrapper = io.TextIOWrapper(io.BytesIO(data), encoding=self.jsonheader["content-encoding"], newline="")
            self.request = json.load(wrapper)
            wrapper.close()
        else:
            self.request = data
        self.selector.modify(self.sock, selectors.EVENT_WRITE, data=self)

    def create_response(self) -> None:
        if self.jsonheader["content-type"] == "text/json":
            action = self.request.get("action")
            if action == "search":
                query = self.request.get("value")
                content = {"result": ANSWERS.get(query) or f"No match for '{query}'."}
            else:
                content = {"result": f"Error: invalid action '{action}'."}
            body = json.dumps(content, ensure_ascii=False).encode("utf-8")
            kind, encoding = "text/json", "utf-8"
        else:
            body = b"First 10 bytes of request: " + self.request[:10]
            kind, encoding = "binary/custom-server-binary-type", "binary"
        header = {"byteorder": "little", "content-type": kind, "content-encoding": encoding,
                  "content-length": len(body)}
        header_bytes = json.dumps(header, ensure_ascii=False).encode("utf-8")
        self._send_buffer += struct.pack(">H", len(header_bytes)) + header_bytes + body
        self.response_created = True

    def close(self) -> None:
        try:
            self.selector.unregister(self.sock)
        finally:
            self.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--bind", default="")
    parser.add_argument("--port", type=int, default=65432)
    args, _ = parser.parse_known_args()
    selector = selectors.DefaultSelector()
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind((args.bind, args.port))
    listening.listen()
    listening.setblocking(False)
    selector.register(listening, selectors.EVENT_READ, data=None)
    try:
        while True:
            for key, mask in selector.select(timeout=None):
                if key.data is None:
                    conn, _ = listening.accept()
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ, data=Message(selector, conn))
                else:
                    message = key.data
                    try:
                        message.process_events(mask)
                    except Exception:
                        message.close()
    except KeyboardInterrupt:
        pass
    finally:
        selector.close()


if __name__ == "__main__":
    main()
