"""Binds to 127.0.0.1 whatever it is told: only its own host can reach it."""

import socket
import sys

port = int(sys.argv[2])
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)
