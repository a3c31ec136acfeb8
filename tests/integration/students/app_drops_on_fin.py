# A student's selectors server for the application protocol that reads
# whatever a ready socket has, until recv() would block, and treats an end of
# file as "the client has gone": it drops the connection, even with a whole
# request already in its buffer. A client that keeps its socket open until
# the answer comes is served; one that shuts down its sending side right
# after the request (a FIN: "nothing more is coming", not "do not answer")
# gets no answer. Pieces and back-to-back requests are handled correctly.
import contextlib
import json
import selectors
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


def whole_request(buffer):
    """(header, content) once the buffer holds a whole request, else None."""
    if len(buffer) < 2:
        return None
    (header_length,) = struct.unpack(">H", buffer[:2])
    if len(buffer) < 2 + header_length:
        return None
    header = json.loads(buffer[2 : 2 + header_length])
    end = 2 + header_length + header["content-length"]
    if len(buffer) < end:
        return None
    return header, bytes(buffer[2 + header_length : end])


def close(conn):
    selector.unregister(conn)
    conn.close()


def service(conn, buffer):
    while True:
        try:
            chunk = conn.recv(4096)
        except BlockingIOError:
            break  # all that is there has been read
        except OSError:
            close(conn)
            return
        if not chunk:  # the bug: end of file, so nobody to answer
            close(conn)
            return
        buffer += chunk
    try:
        request = whole_request(buffer)
    except (ValueError, KeyError):
        close(conn)
        return
    if request is None:
        return  # wait for the rest
    selector.unregister(conn)
    conn.setblocking(True)
    with contextlib.suppress(OSError):
        conn.sendall(respond(*request))
    conn.close()


selector = selectors.DefaultSelector()
listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listening.bind(("", 65432))
listening.listen(128)
listening.setblocking(False)
selector.register(listening, selectors.EVENT_READ, None)
while True:
    for key, _ in selector.select():
        if key.data is None:
            conn, addr = listening.accept()
            conn.setblocking(False)
            selector.register(conn, selectors.EVENT_READ, bytearray())
        else:
            service(key.fileobj, key.data)
