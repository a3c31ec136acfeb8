"""The helper module of a tutorial-style submission: the protocol's framing, apart from the sockets."""

import json
import struct

ANSWERS = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}


def recv_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("peer closed mid-message")
        data += chunk
    return data


def read_message(sock):
    (header_length,) = struct.unpack(">H", recv_exactly(sock, 2))
    header = json.loads(recv_exactly(sock, header_length).decode("utf-8"))
    return header, recv_exactly(sock, header["content-length"])


def message(content, content_type, encoding):
    header = json.dumps({"byteorder": "little", "content-type": content_type, "content-encoding": encoding,
                         "content-length": len(content)}).encode("utf-8")
    return struct.pack(">H", len(header)) + header + content


def respond(header, content):
    if header["content-type"] == "text/json":
        request = json.loads(content.decode(header["content-encoding"]))
        if request.get("action") == "search":
            value = request.get("value")
            result = ANSWERS.get(value, f"No match for '{value}'.")
        else:
            result = f"Error: invalid action '{request.get('action')}'."
        return message(json.dumps({"result": result}, ensure_ascii=False).encode("utf-8"), "text/json", "utf-8")
    return message(b"First 10 bytes of request: " + content[:10], "binary/custom-server-binary-type", "binary")
