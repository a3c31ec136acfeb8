"""A tutorial-style client: `python3 app-client.py <host> <port> <action> <value>`."""

import socket
import sys

import appclient

if len(sys.argv) != 5:
    print(f"usage: {sys.argv[0]} <host> <port> <action> <value>")
    sys.exit(1)
host, port, action, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with socket.create_connection((host, port), timeout=10) as sock:
    sock.sendall(appclient.request(action, value))
    response = appclient.read_all(sock)
print(f"got result: {response.get('result')}")
