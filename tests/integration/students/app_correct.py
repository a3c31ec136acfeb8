# A student's threaded server for the application protocol, done right: it
# reads into a buffer until the buffer holds the 2-byte prefix, then the
# header it announces, then content-length bytes of content, however recv()
# cuts the stream, answers that one request and closes. A FIN after the
# request, or a second request behind it, changes nothing.
import json
import socketserver
import struct
import sys

ANSWERS = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}


def respond(header, content):
    """The tutorial's answer to one request, framed: prefix, JSON header, content."""
    if header["content-type"] == "text/json":
        request = json.loads(content.decode(header["content-encoding"]))
        action, value = request.get("action"), request.get("value")
        if action == "search":
            result = ANSWERS.get(value) or f"No match for '{value}'."
        else:
            result = f"Error: invalid action '{action}'."
        body = json.dumps({"result": result}, ensure_ascii=False).encode("utf-8")
        kind, encoding = "text/json", "utf-8"
    else:
        body = b"First 10 bytes of request: " + content[:10]
        kind, encoding = "binary/custom-server-binary-type", "binary"
    head = json.dumps({"byteorder": sys.byteorder, "content-type": kind, "content-encoding": encoding,
                       "content-length": len(body)}, ensure_ascii=False).encode("utf-8")
    return struct.pack(">H", len(head)) + head + body


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        self.buffer = b""
        (header_length,) = struct.unpack(">H", self.take(2))
        header = json.loads(self.take(header_length))
        content = self.take(header["content-length"])
        self.request.sendall(respond(header, content))

    def take(self, size):
        """The next ``size`` bytes of the stream, reading as often as it takes."""
        while len(self.buffer) < size:
            chunk = self.request.recv(4096)
            if not chunk:
                raise ConnectionError("the client closed in the middle of a request")
            self.buffer += chunk
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


with Server(("", 65432), Handler) as server:
    server.serve_forever()
