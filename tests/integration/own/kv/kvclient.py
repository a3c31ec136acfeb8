"""A client with its server's address written in the file, as the classic tutorial's echo client has.

    python3 kvclient.py 'SET colour blue' 'GET colour'
"""

import socket
import sys

HOST = "server"  # the server host's name: lab hosts find each other by name
PORT = 65432

with socket.create_connection((HOST, PORT), timeout=5) as sock, sock.makefile("rw", encoding="utf-8") as stream:
    for request in sys.argv[1:]:
        stream.write(request + "\n")
        stream.flush()
        print(stream.readline().strip())
