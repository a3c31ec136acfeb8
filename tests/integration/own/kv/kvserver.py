"""A key-value server in two modules, taking its address as the classic tutorial's servers do.

    python3 kvserver.py HOST PORT
"""

import socket
import sys

from kvstore import Store


def main(host: str, port: int) -> None:
    store = Store()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listening:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen()
        print(f"kv server listening on {host}:{port}", flush=True)
        while True:
            conn, _ = listening.accept()
            with conn, conn.makefile("r", encoding="utf-8", newline="\n") as lines:
                for line in lines:  # a text file reads ahead: writes go straight to the socket, not through it
                    conn.sendall((store.answer(line) + "\n").encode("utf-8"))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
