"""Writing a results file so that no reader, and no crash, ever finds half of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class NotWritten(OSError):
    """A results file could not be written (a full disk, say); whatever was at its path before is still there, whole."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.path = path


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file beside ``path``, then rename it over ``path`` (one step, as POSIX promises).

    The new file is flushed to disk first, so that a crash leaves the old
    content or the new, never a mixture or an empty file. A failure (no
    space left, say) removes the new file and raises ``NotWritten``, naming
    ``path``.
    """
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise NotWritten(path, exc) from exc
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, NotWritten):
            raise NotWritten(path, exc) from exc
        raise
