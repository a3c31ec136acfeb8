"""Run one scenario and send this process a signal at the k-th request to the engine.

    python -m tests.integration.interrupt_driver INT 17 scenario.toml

Counting the SDK's HTTP requests, and the requests to the hosts' agents
(which go over an attached exec, not HTTP), gives the moments of a run in
order (create a network, create a container, copy nodes/, start, exec, a
check through an agent, ..., remove), so a test can sweep k over all of
them; the node image is looked up before counting starts. The signal is sent just as the k-th
request starts, so it arrives while that step is under way (the request
itself still goes out). Nothing is mocked: every request really reaches the
engine. Prints the number of requests made on stderr; exits with the run's
exit status.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from socklab import api
from socklab.backend.docker import DockerBackend
from socklab.backend.docker.channel import ExecChannel
from socklab.scenario import load


def main() -> int:
    signame, at, path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    backend = DockerBackend()
    client = backend.api
    count = 0
    lock = threading.Lock()

    def counted(method):
        def request(*args, **kwargs):
            nonlocal count
            with lock:
                count += 1
                fire = count == at
            if fire:
                os.kill(os.getpid(), getattr(signal, f"SIG{signame}"))
            return method(*args, **kwargs)

        return request

    backend.ensure_image(lambda text: None)
    for verb in ("_get", "_post", "_put", "_delete"):
        setattr(client, verb, counted(getattr(client, verb)))
    ExecChannel.send = counted(ExecChannel.send)  # type: ignore[method-assign]  # a request to a host's agent
    try:
        result = api.run([load(path)], backend=backend, results_root=path.parent / "results")
        status = result.exit_status
    finally:
        print(count, file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
