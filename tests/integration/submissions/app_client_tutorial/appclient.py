"""The helper module of a tutorial-style client: build the request, read the response."""

import json
import struct


def request(action, value):
    content = json.dumps({"action": action, "value": value}, ensure_ascii=False).encode("utf-8")
    header = json.dumps({"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8",
                         "content-length": len(content)}).encode("utf-8")
    return struct.pack(">H", len(header)) + header + content


def read_all(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    (header_length,) = struct.unpack(">H", data[:2])
    header = json.loads(data[2:2 + header_length])
    content = data[2 + header_length:2 + header_length + header["content-length"]]
    return json.loads(content.decode(header["content-encoding"]))
