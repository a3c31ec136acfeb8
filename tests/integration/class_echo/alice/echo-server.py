"""A correct tutorial-style echo server: `python3 echo-server.py <host> <port>`, one client at a time."""

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
            print(f"Connected by {addr}", flush=True)
            while data := conn.recv(1024):
                conn.sendall(data)
