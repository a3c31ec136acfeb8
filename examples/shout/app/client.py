"""Shout client: sends each message, prints each answer.

    python3 client.py HOST PORT MESSAGE...
"""

import socket
import sys

from framing import frame, read_message


def main(host: str, port: int, messages: list[str]) -> None:
    with socket.create_connection((host, port), timeout=5) as sock:
        for message in messages:
            sock.sendall(frame(message))
            print(read_message(sock))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
