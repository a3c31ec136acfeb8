"""Your own files and images on lab hosts, on a real engine.

Files arrive through the engine's archive API with their owner, content and
mode; ``invoke cp`` copies both ways; a host built from a Dockerfile of its
own (a dependency vendored beside it) serves across hosts, and is built
once; an unknown image, a Dockerfile that fails and an image lacking python3
are clear errors (exit 2) that leave nothing behind. Every image a test
builds is removed at its end (each build folder is the test's own: a token
file makes its digest, and so its image, unique).
"""

from __future__ import annotations

import re
import secrets
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from docker.errors import ImageNotFound

from socklab import catalogue, events
from socklab.backend import ImageProblem
from socklab.backend.docker.images import LABEL_CONTEXT, OWN_REPOSITORY
from socklab.constants import LABEL_RECIPE
from socklab.errors import EXIT_BAD_INPUT, EXIT_OK
from socklab.lab import Lab
from socklab.model import Host, Image, Network
from tests.helpers import invoke

HERE = Path(__file__).resolve().parent
OWN_IMAGE = HERE / "own_image"  # a Dockerfile, the server it runs, and the module it imports, vendored
LAN = {"lan": Network("lan")}


@pytest.fixture
def build_folder(engine, tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``build_folder(name)``: a folder of this test's own, with a token that makes its image unique.

    Whatever images were built from these folders are removed at the end.
    """
    made: list[Path] = []

    def make(name: str, dockerfile: str | None = None) -> Path:
        folder = tmp_path / name
        if dockerfile is None:
            shutil.copytree(OWN_IMAGE, folder)
        else:
            folder.mkdir()
            (folder / "Dockerfile").write_text(textwrap.dedent(dockerfile))
        (folder / ".token").write_text(secrets.token_hex(8))
        made.append(folder)
        return folder

    yield make
    for folder in made:
        for image in engine.client.images.list(filters={"label": f"{LABEL_CONTEXT}={folder}"}):
            engine.client.images.remove(image.id, force=True)


def notes_into(notes: list[str]) -> events.Listener:
    return lambda event: notes.append(event.text) if isinstance(event, events.Note) else None


def write_scenario(folder: Path, name: str, body: str, host: str = "server") -> Path:
    """A scenario file of the test's own: ``body`` (networks, hosts), and a check from ``host``."""
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""\
        [scenario]
        name = "{name}"
        title = "a test's own scenario"
        topic = "Tests"
        explains = "What a test needs."
        """) + textwrap.dedent(body) + textwrap.dedent(f"""
        [[checks]]
        name = "the host runs a command"
        host = "{host}"
        shell = "true"
        expect = {{ exit = 0 }}
        """))
    return path


# -- files ----------------------------------------------------------------------------------------------


def test_files_and_folders_arrive_with_owner_content_and_read_only_mode_on_two_hosts(backend, tmp_path: Path
                                                                                      ) -> None:
    app = tmp_path / "app"
    (app / "sub").mkdir(parents=True)
    (app / "run.sh").write_text("#!/bin/sh\necho running\n")
    (app / "run.sh").chmod(0o755)
    (app / "sub" / "data.txt").write_text("data\n")
    (app / "data-link").symlink_to("sub/data.txt")
    (tmp_path / "settings.txt").write_text("port = 7000\n")
    (tmp_path / "shared.txt").write_text("for every host\n")
    path = write_scenario(tmp_path, "own-files", """\
        files = { "/lab/shared.txt" = "shared.txt" }

        [networks.lan]
        [hosts.server]
        networks = ["lan"]
        image = "socklab-node:latest"
        files = { "/lab/app" = "app/", "/srv/conf/settings.txt" = { from = "settings.txt", read_only = true } }
        [hosts.client]
        networks = ["lan"]
        files = { "/lab/app" = { from = "app", read_only = true } }
        """)
    scenario = catalogue.load([str(path)])[0]
    describe = ("stat -c '%n %U:%G %a %F' /lab/shared.txt /lab/app /lab/app/run.sh /lab/app/sub "
                "/lab/app/sub/data.txt /lab/app/data-link; readlink /lab/app/data-link; /lab/app/run.sh")
    with Lab.open(backend, scenario.name, scenario.networks, scenario.hosts, files=scenario.files) as lab:
        server, client = (lab.exec(host, ["sh", "-c", describe]) for host in ("server", "client"))
        assert server.ok and client.ok, (server, client)
        assert server.stdout.splitlines() == [
            "/lab/shared.txt lab:lab 644 regular file",
            "/lab/app lab:lab 755 directory",
            "/lab/app/run.sh lab:lab 755 regular file",
            "/lab/app/sub lab:lab 755 directory",
            "/lab/app/sub/data.txt lab:lab 644 regular file",
            "/lab/app/data-link lab:lab 777 symbolic link",
            "sub/data.txt",
            "running",
        ]
        assert client.stdout.splitlines() == [
            "/lab/shared.txt lab:lab 644 regular file",
            "/lab/app root:lab 555 directory",
            "/lab/app/run.sh root:lab 555 regular file",
            "/lab/app/sub root:lab 555 directory",
            "/lab/app/sub/data.txt root:lab 444 regular file",
            "/lab/app/data-link root:lab 777 symbolic link",
            "sub/data.txt",
            "running",
        ]
        settings = lab.exec("server", ["stat", "-c", "%U:%G %a", "/srv/conf", "/srv/conf/settings.txt"])
        assert settings.stdout.splitlines() == ["lab:lab 755", "root:lab 444"], "a folder made for the lab user"
        assert lab.get("server", "/srv/conf/settings.txt") == b"port = 7000\n"
        assert lab.get("client", "/lab/app") == {"run.sh": b"#!/bin/sh\necho running\n", "sub/data.txt": b"data\n"}
        # The lab user writes its own copies, and can neither write nor unlock the read-only ones.
        assert lab.exec("server", ["sh", "-c", "echo more >> /lab/app/sub/data.txt"]).ok
        for attempt in ("echo more >> /srv/conf/settings.txt", "chmod u+w /srv/conf/settings.txt",
                        "echo more >> /lab/app/sub/data.txt", "touch /lab/app/new", "chmod u+w /lab/app"):
            host = "server" if "/srv" in attempt else "client"
            tried = lab.exec(host, ["sh", "-c", attempt])
            assert not tried.ok and re.search("Permission denied|Operation not permitted", tried.stderr), attempt


def test_put_and_get_on_a_running_lab(backend, tmp_path: Path) -> None:
    folder = tmp_path / "tree"
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "leaf.txt").write_text("leaf\n")
    (folder / "link").symlink_to("deep")
    with Lab.open(backend, "put-get", LAN, {"a": Host("a", ("lan",))}) as lab:
        lab.put("a", b"hello\n", "notes/hello.txt")
        lab.put("a", folder, "/opt/tree", read_only=True)
        assert lab.get("a", "notes/hello.txt") == b"hello\n"
        assert lab.get("a", "/opt/tree") == {"deep/leaf.txt": b"leaf\n"}
        seen = lab.exec("a", ["sh", "-c", "stat -c '%U %a' /lab/notes /lab/notes/hello.txt /opt/tree; "
                                          "cat /opt/tree/link/leaf.txt"])
        assert seen.stdout.splitlines() == ["lab 755", "lab 644", "root 555", "leaf"], seen


# -- invoke cp ------------------------------------------------------------------------------------------------


def test_invoke_cp_copies_both_ways_and_says_what_is_missing(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "own-cp", """\
        [networks.lan]
        [hosts.box]
        networks = ["lan"]
        """, host="box")
    app = tmp_path / "app"
    (app / "sub").mkdir(parents=True)
    (app / "sub" / "a.txt").write_text("a\n")
    (app / "link").symlink_to("sub/a.txt")
    (tmp_path / "one.txt").write_text("one\n")
    up = invoke("up", str(path))
    assert up.returncode == EXIT_OK, up.stdout + up.stderr
    found = re.search(r"invoke down --lab (\S+)`", up.stdout)
    assert found, up.stdout
    lab = found.group(1)
    try:
        there = invoke("cp", str(app), "box:/lab", "--lab", lab)
        assert there.returncode == EXIT_OK and "box:/lab/app" in there.stdout, there.stdout + there.stderr
        assert invoke("cp", str(tmp_path / "one.txt"), "box:copied.txt", "--lab", lab).returncode == EXIT_OK
        listed = invoke("exec", "box", "--lab", lab, "--",
                        "stat -c '%U %n' /lab/app/sub/a.txt /lab/copied.txt; readlink /lab/app/link")
        assert listed.stdout.splitlines() == ["lab /lab/app/sub/a.txt", "lab /lab/copied.txt", "sub/a.txt"]

        back = tmp_path / "back"
        back.mkdir()
        assert invoke("cp", "box:/lab/app", str(back), "--lab", lab).returncode == EXIT_OK  # into a folder
        assert invoke("cp", "box:copied.txt", str(back / "again.txt"), "--lab", lab).returncode == EXIT_OK
        assert (back / "app" / "sub" / "a.txt").read_text() == "a\n" and (back / "again.txt").read_text() == "one\n"
        assert (back / "app" / "link").is_symlink() and (back / "app" / "link").readlink() == Path("sub/a.txt")

        no_local = invoke("cp", str(tmp_path / "nothing"), "box:/lab", "--lab", lab)
        assert no_local.returncode == EXIT_BAD_INPUT and "no such file or folder here" in no_local.stderr
        no_remote = invoke("cp", "box:/lab/nothing", str(back), "--lab", lab)
        assert no_remote.returncode == EXIT_BAD_INPUT and "has no /lab/nothing" in no_remote.stderr
        no_folder = invoke("cp", str(tmp_path / "one.txt"), "box:/nowhere/one.txt", "--lab", lab)
        assert no_folder.returncode == EXIT_BAD_INPUT and "has no folder /nowhere" in no_folder.stderr
    finally:
        down = invoke("down", "--lab", lab)
    assert down.returncode == EXIT_OK, down.stderr


# -- images -------------------------------------------------------------------------------------------------------


def test_a_host_built_from_its_own_dockerfile_serves_across_hosts_and_is_built_once(backend, build_folder
                                                                                     ) -> None:
    folder = build_folder("shout")
    hosts = {"server": Host("server", ("lan",), image=Image(build=folder)), "client": Host("client", ("lan",))}
    notes: list[str] = []
    images = []
    for _ in range(2):
        with Lab.open(backend, "own-image", LAN, hosts, listener=notes_into(notes)) as lab:
            lab.start("server", ["python3", "/opt/app/shout_server.py", "7000"], ready="tcp://*:7000")
            seen = lab.run("client", shell="echo hello | nc -N {server.lan.ipv4} 7000")
            assert seen.exit_code == 0 and seen.stdout.strip() == "HELLO!", seen
            images.append(backend.api.inspect_container(lab.infos["server"].handle.ref)["Image"])
    assert sum("building the image of host server" in note for note in notes) == 1, notes
    assert images[0] == images[1], "the second lab runs the image the first one built"
    image = backend.client.images.get(images[0])
    (tag,) = image.tags
    assert tag.startswith(f"{OWN_REPOSITORY}:") and image.labels[LABEL_CONTEXT] == str(folder)
    assert image.labels[LABEL_RECIPE] == tag.partition(":")[2]


def test_an_image_lacking_python3_is_refused_naming_what_is_missing(backend, build_folder) -> None:
    folder = build_folder("no-python", """\
        FROM socklab-node
        RUN rm -f /usr/bin/python3 /usr/bin/python3.*
        """)
    hosts = {"server": Host("server", ("lan",), image=Image(build=folder)), "client": Host("client", ("lan",))}
    with pytest.raises(ImageProblem) as refused, Lab.open(backend, "no-python", LAN, hosts):
        pass
    text = str(refused.value)
    assert refused.value.exit_status == EXIT_BAD_INPUT
    assert text.startswith("hosts.server.image (built from ") and "lacks" in text and "python3" in text, text
    assert "FROM socklab-node" in text and "iptables" not in text, "only what is missing is named"


def test_an_unknown_image_is_a_clear_error_and_makes_nothing(tmp_path: Path) -> None:
    missing = f"socklab-test-nowhere:{secrets.token_hex(4)}"
    path = write_scenario(tmp_path, "own-unknown", f"""\
        [networks.lan]
        [hosts.server]
        networks = ["lan"]
        image = "{missing}"
        """)
    run = invoke("run", str(path), "--results", str(tmp_path / "results"))
    assert run.returncode == EXIT_BAD_INPUT, run.stdout + run.stderr
    assert f"hosts.server.image: no image '{missing}' on the Docker engine" in run.stderr
    assert "never pulls" in run.stderr and "build" in run.stderr
    # nothing is left: the test's own leak check (tests/conftest.py lab_owner) fails it otherwise


def test_a_dockerfile_that_fails_is_a_clear_error_with_its_log_and_leaves_nothing(engine, build_folder,
                                                                                  tmp_path: Path) -> None:
    folder = build_folder("failing", """\
        FROM socklab-node
        RUN echo a first step > /first
        RUN echo about to fail && false
        """)
    path = write_scenario(tmp_path, "own-failing", f"""\
        [networks.lan]
        [hosts.server]
        networks = ["lan"]
        image = {{ build = "{folder}" }}
        """)
    run = invoke("run", str(path), "--results", str(tmp_path / "results"))
    assert run.returncode == EXIT_BAD_INPUT, run.stdout + run.stderr
    assert f"hosts.server.image: the Dockerfile in {folder} failed to build" in run.stderr
    assert "returned a non-zero code: 1" in run.stderr and "about to fail" in run.stderr, "the log's end"
    assert engine.client.images.list(filters={"label": f"{LABEL_CONTEXT}={folder}"}) == []
    after_first_step = re.findall(r"^ ---> ([0-9a-f]{12})$", run.stderr, re.MULTILINE)[1:]  # [0] is the base
    assert after_first_step, run.stderr
    for step in after_first_step:
        with pytest.raises(ImageNotFound):
            engine.client.images.get(step)
