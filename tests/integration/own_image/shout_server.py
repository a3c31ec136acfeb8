"""Answers each line a client sends with the line shouted, by the vendored module ``shout``."""

from __future__ import annotations

import socketserver
import sys

from shout import shout  # type: ignore[import-not-found]  # on PYTHONPATH in the image built here


class Shouting(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(shout(line.decode().strip()).encode() + b"\n")


if __name__ == "__main__":
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[1])), Shouting) as server:
        print(f"Listening on {sys.argv[1]}", flush=True)
        server.serve_forever()
