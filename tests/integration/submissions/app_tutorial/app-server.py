"""A tutorial-style application server: `python3 app-server.py <host> <port>`, a thread per connection."""

import socket
import sys
import threading

import appproto


def serve(conn, addr):
    with conn:
        try:
            header, content = appproto.read_message(conn)
            conn.sendall(appproto.respond(header, content))
            print(f"answered {addr}", flush=True)
        except (ConnectionError, ValueError, KeyError) as exc:
            print(f"error {addr}: {exc}", flush=True)


def main():
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} <host> <port>")
        sys.exit(1)
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as lsock:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host, port))
        lsock.listen()
        print(f"listening on {(host, port)}", flush=True)
        while True:
            conn, addr = lsock.accept()
            threading.Thread(target=serve, args=(conn, addr), daemon=True).start()


main()
