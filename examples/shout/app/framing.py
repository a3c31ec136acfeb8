"""Messages on a byte stream: each one a 4-byte big-endian length, then that many bytes of UTF-8.

TCP keeps no message boundaries, so the program has to: ``read_message``
reads until it has the whole length, then the whole message, however the
bytes were split on the way.
"""

import socket
import struct

HEADER = struct.Struct(">I")


def frame(text: str) -> bytes:
    data = text.encode("utf-8")
    return HEADER.pack(len(data)) + data


def read_exactly(sock: socket.socket, count: int) -> bytes:
    """``count`` bytes, from as many recv() calls as it takes; EOFError if the peer closes first."""
    chunks = []
    while count:
        chunk = sock.recv(count)
        if not chunk:
            raise EOFError("the peer closed the connection mid-message")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket) -> str:
    (length,) = HEADER.unpack(read_exactly(sock, HEADER.size))
    return read_exactly(sock, length).decode("utf-8")
