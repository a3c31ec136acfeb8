# A student's echo server that serves every client in turn and gives each
# an idle timeout, as a careful server should, but writes with send()
# instead of sendall(). On a socket with a timeout, send() waits until the
# send buffer has some room and then takes only what fits: it returns how
# many bytes it took, and the rest of this chunk is never sent. A fast
# reader empties the buffer in time, so "Hello, world" and even a megabyte
# usually come back whole; a slow reader with a small window does not.
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
            conn.settimeout(10)
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    conn.send(data)  # the bug: what send() did not take is lost
            except OSError as exc:
                print(f"{addr}: {exc}", flush=True)
