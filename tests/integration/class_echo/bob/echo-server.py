"""Reads once: the tutorial's echo server with its loop taken out. A short message is echoed; a long one is not."""

import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            conn.sendall(conn.recv(1024))
