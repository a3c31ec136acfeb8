"""A hostile submission: fill the disk, one big file at a time, in every folder it may write in.

    python3 filler.py FOLDER...

In each FOLDER it writes one file until a write fails, then more files, a
mebibyte each, until a write fails again; it prints, for each folder, the
size the single file reached, the bytes written in all, and the error that
stopped each. It also tries folders it may not write in (/, /lab, /etc).
"""

from __future__ import annotations

import errno
import sys

CHUNK = b"x" * 2**20


def fill(path: str, limit: int) -> tuple[int, str]:
    """Write ``path`` until a write fails (or ``limit`` bytes): the bytes written, and the error's name."""
    written = 0
    try:
        with open(path, "wb", buffering=0) as file:
            while written < limit:
                written += file.write(CHUNK)
    except OSError as exc:
        return written, errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return written, "none"


def main() -> None:
    for folder in sys.argv[1:]:
        single, why_single = fill(f"{folder}/big", 2**30)
        total, why, index = single, "none", 0
        while why == "none" and total < 2**30:
            index += 1
            wrote, why = fill(f"{folder}/part{index}", 2**20)
            total += wrote
        print(f"{folder} single={single} {why_single} total={total} {why}", flush=True)
    for folder in ("/", "/lab", "/etc"):
        _, why = fill(f"{folder}/filler", 2**20)
        print(f"{folder} {why}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
