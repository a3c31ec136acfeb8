"""The node programs: which ones a scenario may name, and the archive copied to hosts.

``nodes/`` travels into every lab host at start (never baked into the image),
so an edited program takes effect on the next run without a rebuild.
"""

from __future__ import annotations

import functools
import io
import tarfile
from pathlib import Path

import nodes

NODES_DIR = Path(nodes.__file__).resolve().parent
_MAIN_GUARD = 'if __name__ == "__main__":'


@functools.cache
def available() -> tuple[str, ...]:
    """Every module of nodes/ that runs as a program (it has a ``__main__`` guard)."""
    return tuple(sorted(p.stem for p in NODES_DIR.glob("*.py") if _MAIN_GUARD in p.read_text(encoding="utf-8")))


def archive() -> bytes:
    """A tar of nodes/*.py to unpack on a host.

    Built fresh for each lab, so that edits between runs take effect; it is a
    few dozen small files, so this costs well under a millisecond per host.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(NODES_DIR.glob("*.py")):
            _add(tar, f"nodes/{path.name}", path.read_bytes())
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))

