"""Like app_tutorial, but serving one connection at a time, and it dies on a binary request.

Its author decoded every request as JSON and never caught the error: a
binary request ends the whole process with a traceback.
"""

import json
import socket
import sys

import appproto


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as lsock:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host, port))
        lsock.listen()
        print(f"listening on {(host, port)}", flush=True)
        while True:
            conn, addr = lsock.accept()
            with conn:
                header, content = appproto.read_message(conn)
                json.loads(content.decode("utf-8"))  # the bug: a binary request raises here
                conn.sendall(appproto.respond(header, content))
                print(f"answered {addr}", flush=True)


main()
