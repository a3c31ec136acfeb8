# A student's threaded server for the application protocol that reads until
# it has a whole request, as it should, and then takes everything after the
# header as the content, instead of content-length bytes of it. One request
# per write is answered; two requests back to back in one write make the
# first request's "content" carry the second one too, and its JSON fails to
# parse: the client gets no answer.
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
        buffer = b""
        while True:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            buffer += chunk
            if len(buffer) < 2:
                continue
            (header_length,) = struct.unpack(">H", buffer[:2])
            if len(buffer) < 2 + header_length:
                continue
            header = json.loads(buffer[2 : 2 + header_length])
            if len(buffer) >= 2 + header_length + header["content-length"]:
                break
        content = buffer[2 + header_length :]  # the bug: not [: header["content-length"]] of it
        self.request.sendall(respond(header, content))


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


with Server(("", 65432), Handler) as server:
    server.serve_forever()
