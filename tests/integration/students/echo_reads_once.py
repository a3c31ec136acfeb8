# A student's echo server that takes its arguments and serves every client,
# but reads once per connection and answers what that one recv() returned:
# fine for "Hello, world", wrong for a message that arrives in pieces.
import argparse
import socket

parser = argparse.ArgumentParser()
parser.add_argument("mode")
parser.add_argument("--bind", default="")
parser.add_argument("--port", type=int, default=65432)
args = parser.parse_args()

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.bind, args.port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            data = conn.recv(1024)
            conn.send(data)
