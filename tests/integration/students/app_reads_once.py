# A student's server for the application protocol (2-byte length, JSON
# header, content) that reads each request with a single recv(): a request
# sent in one piece on a quiet network arrives in one piece, so every
# ordinary request is answered; a request that arrives in pieces (a byte at
# a time, or the length prefix cut in two) is not. Serves one connection at
# a time; ignores its arguments and listens where the scenario expects it.
import json
import socket
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


with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", 65432))
    s.listen(128)
    while True:
        conn, addr = s.accept()
        with conn:
            try:
                data = conn.recv(4096)  # the bug: the whole request, surely?
                (header_length,) = struct.unpack(">H", data[:2])
                header = json.loads(data[2 : 2 + header_length])
                content = data[2 + header_length : 2 + header_length + header["content-length"]]
                conn.sendall(respond(header, content))
            except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
                print(f"{addr}: {exc!r}", flush=True)
