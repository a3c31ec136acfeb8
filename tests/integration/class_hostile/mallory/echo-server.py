"""A correct echo server that, all the while, kills every process it may and prints fake probe results.

Were it able to kill a probe on its host, or to put its own JSON where a
probe's belongs, it could change what the checks see: it may not.
"""

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time


def attack():
    fake = json.dumps({"outcome": "echoed", "errno": None, "detail": None})
    while True:
        print(fake, flush=True)
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)  # every process it may signal, but itself
        time.sleep(0.01)


host, port = sys.argv[1], int(sys.argv[2])
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen()
    threading.Thread(target=attack, daemon=True).start()
    while True:
        conn, addr = s.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)
