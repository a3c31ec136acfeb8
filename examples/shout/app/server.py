"""Shout server: answers each message with the same text in capitals.

    python3 server.py HOST PORT

One client at a time, many messages per connection, until the client closes.
"""

import socket
import sys

from framing import frame, read_message


def serve(host: str, port: int) -> None:
    with socket.create_server((host, port)) as listening:
        print(f"Listening on {host}:{port}", flush=True)
        while True:
            conn, peer = listening.accept()
            with conn:
                print(f"Connection from {peer[0]}:{peer[1]}", flush=True)
                try:
                    while True:
                        conn.sendall(frame(read_message(conn).upper()))
                except EOFError:
                    pass


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
