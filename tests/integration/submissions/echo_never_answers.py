"""Accepts every connection and never answers: given socklab's own arguments (serve --bind ADDR --port PORT)."""

import socket
import sys

args = dict(zip(sys.argv[2::2], sys.argv[3::2], strict=True))
held = []
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args["--bind"], int(args["--port"])))
    s.listen()
    while True:
        conn, _ = s.accept()
        held.append(conn)  # kept open, never read, never answered
