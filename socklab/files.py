"""Archives of your own files: what a lab puts on its hosts, and what it reads back from them.

A lab host gets files through the engine's archive API (a tar unpacked by the
engine itself, as ``docker cp`` does), never through a bind mount, so that a
remote engine works as well as a local one. The tar says who owns what:

- a copy is owned by the lab user (``lab``, uid and gid ``LAB_ID`` as
  docker/provision makes it in the node image), with the modes of the
  source's kind: folders 0755, files 0644, or 0755 if the source is
  executable by its owner;
- a copy for the graded user (``FileCopy.user``: a submission) is owned by
  that user (``GRADED_ID``), with the same modes;
- a read-only copy belongs to root, group ``lab``, with no write bit at all
  (folders 0555, files 0444 or 0555): the lab user can read it but neither
  write it nor give itself the write bit back (only an owner may chmod);
- symbolic links inside a folder stay links, with the target they have here
  (a link given as the source itself is followed: you name what it points to);
- sockets, pipes and devices inside a folder are left out, as tar does;
- folders above a target that the host lacks are created for the lab user
  (under ``SUBMISSION_HOME``, for the graded user) (``missing_parents``): an
  entry for each is in the tar, while folders that
  exist are never named in it, since the engine would reset their owner and
  mode to the tar's.

Names in these archives are relative to ``/``: put them there.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from socklab.constants import GRADED_ID, GRADED_USER, LAB_HOME, LAB_USER, SUBMISSION_HOME
from socklab.errors import SocklabError
from socklab.model import FileCopy

LAB_ID = 1000  # uid and gid of the lab user in the node image (docker/provision: useradd --uid 1000 --user-group)
FOLDER_MODE = 0o755
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
WRITE_BITS = 0o222

Source = Path | bytes  # a local file or folder, or the content of one file (``FileCopy.source``)


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int
    user: str
    group: str


LAB = Owner(LAB_ID, LAB_ID, LAB_USER, LAB_USER)
READ_ONLY = Owner(0, LAB_ID, "root", LAB_USER)  # the lab user may read (group lab), never write nor chmod
GRADED = Owner(GRADED_ID, GRADED_ID, GRADED_USER, GRADED_USER)  # a submission's own files


def host_path(path: str) -> str:
    """A path on a host, absolute and normalised; a relative one is relative to the lab user's home."""
    normal = posixpath.normpath(posixpath.join(LAB_HOME, path))
    return "/" + normal.lstrip("/")  # normpath keeps a leading "//"


def ancestors(target: str) -> list[str]:
    """The folders above ``target``, nearest first, up to (without) ``/``."""
    return [str(parent) for parent in PurePosixPath(host_path(target)).parents][:-1]


def missing_parents(targets: Iterable[str], exists: Callable[[str], bool]) -> list[str]:
    """The folders above ``targets`` that the host lacks, outermost first (``exists`` asks the host).

    It asks about the nearest folder first and climbs only while the answer
    is no: usually one question per distinct parent folder.
    """
    missing: set[str] = set()
    known: set[str] = set()
    for target in targets:
        for folder in ancestors(target):
            if folder in known:
                break
            if exists(folder):
                known.add(folder)
                break
            missing.add(folder)
            known.add(folder)
    return sorted(missing, key=lambda path: (path.count("/"), path))


def archive(copies: Sequence[FileCopy], parents: Iterable[str] = ()) -> bytes:
    """A tar to unpack at ``/`` on a host: the folders ``parents`` (for the lab user), then each copy in order.

    A later copy to the same target replaces an earlier one (the scenario's
    files first, then the host's own).
    """
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in parents:
            tar.addfile(_info(_name(folder), tarfile.DIRTYPE, FOLDER_MODE, _parent_owner(folder), now))
        for copy in copies:
            _add(tar, _name(copy.target), copy.source, _modes(copy), now)
    return buffer.getvalue()


def _parent_owner(folder: str) -> Owner:
    """A folder made above a copy: the graded user's in its own home (a submission's folder), else the lab user's."""
    return GRADED if PurePosixPath(host_path(folder)).is_relative_to(SUBMISSION_HOME) else LAB


def size(copies: Iterable[FileCopy]) -> int:
    """Bytes of file content the copies hold (links and folders count nothing)."""
    total = 0
    for copy in copies:
        if isinstance(copy.source, bytes):
            total += len(copy.source)
        elif copy.source.is_file():
            total += copy.source.stat().st_size
        else:
            total += sum(path.lstat().st_size for path in copy.source.rglob("*")
                         if path.is_file() and not path.is_symlink())
    return total


def _name(target: str) -> str:
    name = host_path(target).lstrip("/")
    if not name:
        raise SocklabError("/ cannot be replaced: name a file or folder under it, such as /lab/app")
    return name


def _info(name: str, kind: bytes, mode: int, owner: Owner, mtime: int, size: int = 0,
          linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime, info.linkname = kind, mode, size, mtime, linkname
    info.uid, info.gid, info.uname, info.gname = owner.uid, owner.gid, owner.user, owner.group
    return info


Modes = tuple[Owner, int]  # who owns a copy, and the bits to take away from its modes


def _modes(copy: FileCopy) -> Modes:
    if copy.read_only:
        return READ_ONLY, WRITE_BITS
    return (GRADED, 0) if copy.user == GRADED_USER else (LAB, 0)


def _add(tar: tarfile.TarFile, name: str, source: Source, modes: Modes, now: int) -> None:
    owner, unwritable = modes
    if isinstance(source, bytes):
        tar.addfile(_info(name, tarfile.REGTYPE, FILE_MODE & ~unwritable, owner, now, len(source)),
                    io.BytesIO(source))
        return
    try:
        found = source.stat()  # the source itself: a link to it is followed
    except OSError as exc:
        raise SocklabError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(found.st_mode):
        tar.addfile(_info(name, tarfile.DIRTYPE, FOLDER_MODE & ~unwritable, owner, int(found.st_mtime)))
        _add_folder(tar, name, source, modes)
    elif stat.S_ISREG(found.st_mode):
        _add_file(tar, name, source, found, modes)
    else:
        raise SocklabError(f"{source}: is neither a file nor a folder")


def _add_file(tar: tarfile.TarFile, name: str, path: Path, found: os.stat_result, modes: Modes) -> None:
    owner, unwritable = modes
    mode = (EXECUTABLE_MODE if found.st_mode & stat.S_IXUSR else FILE_MODE) & ~unwritable
    with path.open("rb") as data:
        tar.addfile(_info(name, tarfile.REGTYPE, mode, owner, int(found.st_mtime), found.st_size), data)


def _add_folder(tar: tarfile.TarFile, name: str, folder: Path, modes: Modes) -> None:
    """Everything inside ``folder``, by name, depth first: folders, files, and links as links."""
    owner, unwritable = modes
    with os.scandir(folder) as found:
        entries = sorted(found, key=lambda entry: entry.name)
    for entry in entries:
        inner, path = f"{name}/{entry.name}", Path(entry.path)
        info = entry.stat(follow_symlinks=False)
        if entry.is_symlink():
            tar.addfile(_info(inner, tarfile.SYMTYPE, 0o777, owner, int(info.st_mtime), linkname=os.readlink(path)))
        elif entry.is_dir(follow_symlinks=False):
            tar.addfile(_info(inner, tarfile.DIRTYPE, FOLDER_MODE & ~unwritable, owner, int(info.st_mtime)))
            _add_folder(tar, inner, path, modes)
        elif entry.is_file(follow_symlinks=False):
            _add_file(tar, inner, path, info, modes)
        # sockets, pipes and devices: left out, as tar leaves out sockets


# -- reading back what the engine sends -------------------------------------------


def contents(data: bytes) -> bytes | dict[str, bytes]:
    """What a tar from the engine holds: a file's bytes, or a folder's regular files by path relative to it.

    The engine names the tar's first entry after what was asked for (``app``
    for ``/lab/app``); links and empty folders have no place in the answer.
    """
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        if not members:
            return {}
        root = members[0]
        if not root.isdir():
            if not root.isfile():
                raise SocklabError(f"{root.name} is not a regular file (a link to {root.linkname!r}?)")
            return _read(tar, root)
        return {member.name.removeprefix(f"{root.name}/"): _read(tar, member)
                for member in members[1:] if member.isfile()}


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = tar.extractfile(member)
    return extracted.read() if extracted else b""


def extract(data: bytes, target: Path) -> int:
    """Unpack a tar from the engine so that its first entry becomes ``target``; return how many entries came.

    Owners are not kept (the files are yours, even if you are root, as
    ``docker cp`` does); the ``tar`` filter refuses entries that would land
    outside ``target`` and drops set-id bits and others' write bits.
    """
    with _Unowned.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        if not members:
            return 0
        root = members[0].name
        renamed = []
        for member in members:
            if (member.name != root and not member.name.startswith(f"{root}/")) or ".." in member.name.split("/"):
                raise SocklabError(f"the engine sent an entry outside {root}: {member.name}")
            member.name = target.name + member.name[len(root):]
            renamed.append(member)
        target.parent.mkdir(parents=True, exist_ok=True)
        if hasattr(tarfile, "tar_filter"):  # Python 3.11.4 and later
            tar.extractall(target.parent, members=renamed, filter="tar")
        else:
            tar.extractall(target.parent, members=renamed)
        return len(renamed)


class _Unowned(tarfile.TarFile):
    """A tar that unpacks files as the caller's own, root or not."""

    def chown(self, tarinfo: tarfile.TarInfo, targetpath: str | bytes | os.PathLike[str] | os.PathLike[bytes],
              numeric_owner: bool) -> None:
        return None
