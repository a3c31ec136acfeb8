"""Your own files on lab hosts, with no engine: the archives (owners, modes, read-only, links, parent folders),
what comes back from a host, Lab.put and Lab.get, ``invoke cp``'s paths, and hosts' own images as a lab asks
for them (the fake backend stands in for the engine)."""

from __future__ import annotations

import io
import os
import socket
import stat
import tarfile
from pathlib import Path

import pytest

from socklab import api, files, preparation
from socklab.backend import ExecResult, ImageProblem, Interface, MissingPath
from socklab.backend.docker.images import folder_digest, own_image_name
from socklab.constants import GRADED_ID, GRADED_USER
from socklab.errors import EXIT_BAD_INPUT, SocklabError, UsageError
from socklab.files import LAB_ID
from socklab.lab import Lab
from socklab.model import FileCopy, Host, Image, Network
from tests.unit.fakes import FakeBackend, ok

LAN = {"lan": Network("lan")}


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {member.name: member for member in tar.getmembers()}


def read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        return extracted.read()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A folder of one's own: a script, a plain file in a subfolder, a relative and an absolute link, a socket."""
    folder = tmp_path / "app"
    (folder / "sub").mkdir(parents=True)
    (folder / "server.py").write_text("print('hi')\n")
    (folder / "server.py").chmod(0o700)
    (folder / "sub" / "data.txt").write_text("data\n")
    (folder / "sub" / "data.txt").chmod(0o600)
    (folder / "link").symlink_to("sub/data.txt")
    (folder / "elsewhere").symlink_to("/etc/hostname")
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(folder / "a.sock"))
    listening.close()
    return folder


# -- the archive ------------------------------------------------------------------------------------------


def test_a_folder_belongs_to_the_lab_user_with_the_modes_of_its_kind(app: Path) -> None:
    found = members(files.archive([FileCopy("/lab/app", app)]))
    assert sorted(found) == ["lab/app", "lab/app/elsewhere", "lab/app/link", "lab/app/server.py", "lab/app/sub",
                             "lab/app/sub/data.txt"], "no socket, no entry for /lab (which exists)"
    for member in found.values():
        assert (member.uid, member.gid, member.uname, member.gname) == (LAB_ID, LAB_ID, "lab", "lab"), member.name
    modes = {name: stat.S_IMODE(member.mode) for name, member in found.items() if not member.issym()}
    assert modes == {"lab/app": 0o755, "lab/app/server.py": 0o755, "lab/app/sub": 0o755,
                     "lab/app/sub/data.txt": 0o644}, "executable by its owner here: 0755; else 0644"


def test_read_only_is_roots_with_group_lab_and_no_write_bit(app: Path) -> None:
    found = members(files.archive([FileCopy("/lab/app", app, read_only=True)]))
    for member in found.values():
        assert (member.uid, member.gid, member.uname, member.gname) == (0, LAB_ID, "root", "lab"), member.name
        if not member.issym():
            assert stat.S_IMODE(member.mode) & 0o222 == 0, member.name
    assert stat.S_IMODE(found["lab/app"].mode) == 0o555
    assert stat.S_IMODE(found["lab/app/server.py"].mode) == 0o555
    assert stat.S_IMODE(found["lab/app/sub/data.txt"].mode) == 0o444


def test_a_submission_and_the_folders_made_for_it_belong_to_the_graded_user(app: Path) -> None:
    copy = FileCopy("/submission/echo/server.py", app / "server.py", user=GRADED_USER)
    found = members(files.archive([copy], ["/submission/echo"]))
    assert {name: (m.uid, m.uname) for name, m in found.items()} == {
        "submission/echo": (GRADED_ID, GRADED_USER), "submission/echo/server.py": (GRADED_ID, GRADED_USER)}
    elsewhere = members(files.archive([FileCopy("/srv/x/server.py", app / "server.py")], ["/srv/x"]))
    assert elsewhere["srv/x"].uid == LAB_ID, "a folder made for the lab user's copy stays the lab user's"


def test_links_inside_a_folder_stay_links_and_a_link_given_is_followed(app: Path, tmp_path: Path) -> None:
    found = members(files.archive([FileCopy("/lab/app", app)]))
    assert found["lab/app/link"].issym() and found["lab/app/link"].linkname == "sub/data.txt"
    assert found["lab/app/elsewhere"].issym() and found["lab/app/elsewhere"].linkname == "/etc/hostname"
    given = tmp_path / "given"
    given.symlink_to(app / "sub" / "data.txt")
    data = files.archive([FileCopy("/lab/data.txt", given)])
    assert members(data)["lab/data.txt"].isfile() and read(data, "lab/data.txt") == b"data\n"


def test_content_and_bytes_arrive_whole(app: Path) -> None:
    data = files.archive([FileCopy("/lab/app", app), FileCopy("/srv/note.txt", b"a note")])
    assert read(data, "lab/app/sub/data.txt") == b"data\n" and read(data, "lab/app/server.py") == b"print('hi')\n"
    note = members(data)["srv/note.txt"]
    assert read(data, "srv/note.txt") == b"a note" and stat.S_IMODE(note.mode) == 0o644 and note.uname == "lab"
    assert files.size([FileCopy("/lab/app", app), FileCopy("/x", b"1234")]) == len("print('hi')\n") + len("data\n") + 4


def test_missing_parent_folders_come_first_and_belong_to_the_lab_user() -> None:
    data = files.archive([FileCopy("/srv/a/b/c.txt", b"c")], parents=["/srv/a", "/srv/a/b"])
    names = list(members(data))
    assert names == ["srv/a", "srv/a/b", "srv/a/b/c.txt"]
    for name in ("srv/a", "srv/a/b"):
        member = members(data)[name]
        assert member.isdir() and (member.uname, stat.S_IMODE(member.mode)) == ("lab", 0o755)


def test_missing_parents_asks_the_nearest_folder_and_climbs_only_while_it_is_missing() -> None:
    exists = {"/", "/lab", "/srv"}
    asked: list[str] = []

    def look(path: str) -> bool:
        asked.append(path)
        return path in exists

    targets = ["/lab/app", "/lab/data.txt", "/srv/a/b/c.txt", "/srv/a/b/d.txt", "/srv/a/e"]
    assert files.missing_parents(targets, look) == ["/srv/a", "/srv/a/b"]
    assert asked == ["/lab", "/srv/a/b", "/srv/a", "/srv"], "each folder asked about once, / never"


def test_paths_on_a_host_are_absolute_and_normal() -> None:
    assert files.host_path("app") == "/lab/app"
    assert files.host_path("/srv/../etc//x/") == "/etc/x"
    assert files.host_path("../../x") == "/x"
    with pytest.raises(SocklabError, match="cannot be replaced"):
        files.archive([FileCopy("/", b"x")])


def test_a_later_copy_to_the_same_path_wins(tmp_path: Path) -> None:
    data = files.archive([FileCopy("/lab/x", b"everyone's"), FileCopy("/lab/x", b"the host's own")])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp_path, filter="data")  # in order, as the engine unpacks it
    assert (tmp_path / "lab" / "x").read_bytes() == b"the host's own"


# -- what comes back from a host -----------------------------------------------------------------------------


def engine_tar(root: str, entries: dict[str, bytes | None]) -> bytes:
    """A tar as the engine sends one: the first entry named after what was asked for; None is a folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in {root: None, **entries}.items() if entries else {root: b"only"}.items():
            info = tarfile.TarInfo(name)
            info.uid = info.gid = LAB_ID
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_contents_are_a_files_bytes_or_a_folders_files_by_relative_path() -> None:
    assert files.contents(engine_tar("note.txt", {})) == b"only"
    folder = engine_tar("app", {"app/a.txt": b"a", "app/sub": None, "app/sub/b.txt": b"b"})
    assert files.contents(folder) == {"a.txt": b"a", "sub/b.txt": b"b"}


def test_extract_renames_the_root_keeps_no_owner_and_stays_inside(tmp_path: Path) -> None:
    folder = engine_tar("app", {"app/a.txt": b"a", "app/sub": None, "app/sub/b.txt": b"b"})
    assert files.extract(folder, tmp_path / "copy") == 4
    assert (tmp_path / "copy" / "sub" / "b.txt").read_bytes() == b"b"
    assert (tmp_path / "copy" / "a.txt").stat().st_uid == os.getuid(), "the files are the caller's own"
    with pytest.raises(SocklabError, match="outside"):
        files.extract(engine_tar("app", {"other/x": b"x"}), tmp_path / "bad")
    with pytest.raises(SocklabError, match="outside"):
        files.extract(engine_tar("app", {"app/../../escape": b"x"}), tmp_path / "bad")
    assert not (tmp_path.parent / "escape").exists()


# -- Lab.open, Lab.put, Lab.get on the fake backend ---------------------------------------------------------------


def puts(backend: FakeBackend) -> dict[str, list[str]]:
    """Every host's archives, as the names in them."""
    found: dict[str, list[str]] = {}
    for host, folder, data in backend.put:
        assert folder == "/", "archives are unpacked at /"
        found.setdefault(host, []).extend(members(data))
    return found


def test_a_lab_puts_everyones_files_then_each_hosts_own(app: Path, tmp_path: Path) -> None:
    (tmp_path / "shared.txt").write_text("for every host")
    backend = FakeBackend()
    backend.folders.add("/srv")
    hosts = {"server": Host("server", ("lan",), files=(FileCopy("/lab/app", app, read_only=True),)),
             "client": Host("client", ("lan",))}
    with Lab.open(backend, "files", LAN, hosts, files=(FileCopy("/srv/x/shared.txt", tmp_path / "shared.txt"),)):
        pass
    put = puts(backend)
    assert put["client"] == ["srv/x", "srv/x/shared.txt"], "a parent folder the host lacks is made"
    assert put["server"][:3] == ["srv/x", "srv/x/shared.txt", "lab/app"]
    looked = [call for call in backend.calls if call[0] == "path_info"]
    assert sorted(call[2] for call in looked if call[1] == "server") == ["/lab", "/srv", "/srv/x"]


def test_a_host_without_files_gets_no_archive() -> None:
    backend = FakeBackend()
    with Lab.open(backend, "plain", LAN, {"a": Host("a", ("lan",))}):
        pass
    assert backend.put == [] and not [call for call in backend.calls if call[0] == "path_info"]


def test_put_and_get(app: Path) -> None:
    backend = FakeBackend()
    with Lab.open(backend, "put-get", LAN, {"a": Host("a", ("lan",))}) as lab:
        lab.put("a", b"hello", "note.txt", read_only=True)
        lab.put("a", str(app), "/lab/app")
        (_, _, note), (_, _, folder) = backend.put
        assert read(note, "lab/note.txt") == b"hello" and members(note)["lab/note.txt"].uname == "root"
        assert "lab/app/sub/data.txt" in members(folder)
        backend.archives["a", "/lab/app"] = engine_tar("app", {"app/x": b"x"})
        assert lab.get("a", "app") == {"x": b"x"}
        with pytest.raises(MissingPath) as missing:
            lab.get("a", "/lab/nothing")
        assert missing.value.exit_status == EXIT_BAD_INPUT and "/lab/nothing" in str(missing.value)
        with pytest.raises(SocklabError, match="no such file or folder"):
            lab.put("a", app / "nothing", "/lab/x")
        with pytest.raises(SocklabError, match="has no host 'b'"):
            lab.get("b", "/lab")


# -- invoke cp ------------------------------------------------------------------------------------------------


def test_cp_needs_one_host_path_and_one_local_path() -> None:
    for source, target in (("a", "b"), ("server:/a", "client:/b")):
        with pytest.raises(UsageError) as refused:
            api.copy(source, target, backend=FakeBackend())
        assert refused.value.exit_status == EXIT_BAD_INPUT and "HOST:PATH" in str(refused.value)


def test_cp_to_a_host_goes_into_a_folder_there_or_takes_the_name_given(app: Path) -> None:
    backend = FakeBackend()
    assert api.copy(str(app), "server:/lab", backend=backend) == f"copied {app} to server:/lab/app"
    assert api.copy(str(app / "server.py"), "server:run/s.py", backend=backend).endswith("server:/lab/run/s.py")
    assert [name for name in puts(backend)["server"] if name.endswith(".py")] == ["lab/app/server.py",
                                                                                 "lab/run/s.py"]
    with pytest.raises(SocklabError, match="has no folder /nowhere"):
        api.copy(str(app), "server:/nowhere/app", backend=backend)
    with pytest.raises(SocklabError, match="no such file or folder here") as missing:
        api.copy(str(app / "nothing"), "server:/lab", backend=backend)
    assert missing.value.exit_status == EXIT_BAD_INPUT


def test_cp_from_a_host_into_a_folder_here_or_as_the_name_given(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.archives["server", "/lab/log"] = engine_tar("log", {"log/a.log": b"a"})
    api.copy("server:log", str(tmp_path), backend=backend)
    api.copy("server:/lab/log", str(tmp_path / "logs"), backend=backend)
    assert (tmp_path / "log" / "a.log").read_bytes() == (tmp_path / "logs" / "a.log").read_bytes() == b"a"
    with pytest.raises(MissingPath, match="has no /lab/nothing"):
        api.copy("server:/lab/nothing", str(tmp_path), backend=backend)


# -- hosts' own images -----------------------------------------------------------------------------------------


def test_a_lab_asks_for_hosts_own_images_before_it_creates_anything(tmp_path: Path) -> None:
    backend = FakeBackend()
    hosts = {"a": Host("a", ("lan",), image=Image(name="mine:1")), "b": Host("b", ("lan",))}
    with Lab.open(backend, "images", LAN, hosts):
        pass
    kinds = [call[0] for call in backend.calls]
    assert kinds.index("host_images") < kinds.index("create_lab")
    assert ("host_images", ["a"]) in backend.calls


def test_a_host_lacking_what_a_lab_host_needs_is_named_with_the_fix_and_the_lab_goes() -> None:
    def lacking(host: str, argv: list[str], user: str) -> ExecResult:
        if "ip route del default" in " ".join(argv):
            return ExecResult(preparation.MISSING_EXIT, f"{preparation.MISSING_MARK} python3 tar user\n", "")
        return ok()

    backend = FakeBackend(lacking)
    hosts = {"a": Host("a", ("lan",), image=Image(name="slim:1"))}
    with pytest.raises(ImageProblem) as refused, Lab.open(backend, "lacking", LAN, hosts):
        pass
    text = str(refused.value)
    assert refused.value.exit_status == EXIT_BAD_INPUT
    assert text.startswith("hosts.a.image (slim:1) lacks") and "python3" in text and "tar" in text
    assert "the user lab (uid and gid 1000" in text and "FROM socklab-node" in text
    assert backend.calls[-1][0] == "destroy_lab" and backend.alive == set()


def test_no_shell_or_no_lab_home_is_told_too() -> None:
    no_shell = ExecResult(126, 'OCI runtime exec failed: exec: "sh": executable file not found in $PATH', "")
    no_home = ExecResult(126, 'OCI runtime exec failed: chdir to cwd ("/lab") set in config.json failed', "")
    assert preparation.missing(no_shell)[0].startswith("sh ")
    assert preparation.missing(no_home) == [preparation.REQUIRED["user"]]
    assert preparation.missing(ExecResult(1, "iptables: no chain", "")) == []


def test_the_script_checks_before_it_unpacks_and_tc_only_for_link_conditions() -> None:
    from socklab.model import LinkConditions

    networks = {"lan": Network("lan"), "lossy": Network("lossy", conditions=LinkConditions(loss=0.1))}
    interfaces = {name: Interface(name, f"198.18.{index}.2", None) for index, name in enumerate(networks)}
    text = preparation.script(Host("a", ("lan", "lossy")), interfaces, networks)
    assert text.index(preparation.MISSING_MARK) < text.index("tar -x")
    assert " tc;" in text
    assert " tc;" not in preparation.script(Host("b", ("lan",)), {"lan": interfaces["lan"]}, networks)


def test_a_build_folder_is_known_by_its_content_and_the_node_image(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
        (folder / "Dockerfile").write_text("FROM socklab-node\n")
        (folder / "run.sh").write_text("echo hi\n")
    assert folder_digest(one, "socklab-node:a") == folder_digest(two, "socklab-node:a"), "the same content"
    assert folder_digest(one, "socklab-node:a") != folder_digest(one, "socklab-node:b"), "another node image"
    before = folder_digest(one, "n")
    (one / "run.sh").chmod(0o755)
    assert folder_digest(one, "n") != before, "the executable bit counts (COPY keeps it)"
    (one / "link").symlink_to("run.sh")
    assert own_image_name(one, "n").startswith("socklab-own:") and own_image_name(one, "n") != own_image_name(two, "n")
