"""An agent's channel (``ExecChannel``) against a peer of the test's own: the engine's frames, threads, TLS.

The peer plays the engine's end of an attached exec: it reads what the
channel sends (the command's standard input) and writes it back framed as
the engine frames a command's output, on stdout, with a line on stderr
now and then. Over a plain socket pair, and over TLS with a certificate
made for the test, with several threads sending while one receives.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from socklab.backend.docker.channel import ExecChannel

STDOUT, STDERR = 1, 2


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def echo_framed(peer: socket.socket) -> None:
    """The engine's end: each chunk of input back on stdout, split in two frames, sent a few bytes at a time."""
    with peer:
        while data := peer.recv(4096):
            half = len(data) // 2
            out = frame(STDOUT, data[:half]) + frame(STDERR, b"said: " + data[:8]) + frame(STDOUT, data[half:])
            for start in range(0, len(out), 5):  # headers and frames cut anywhere
                peer.sendall(out[start:start + 5])


def channel_over(ours: socket.socket) -> ExecChannel:
    api = SimpleNamespace(exec_start=lambda exec_id, socket: ours)  # as the SDK gives a TLS connection: the socket
    return ExecChannel(cast(Any, api), "exec-1")


def talk(channel: ExecChannel, senders: int = 8, messages: int = 50) -> bytes:
    """Send numbered lines from several threads at once while receiving; everything received, once all came."""
    lines = [f"{sender:02}-{n:04}|".encode() * 20 + b"\n" for sender in range(senders) for n in range(messages)]
    expected = sum(len(line) for line in lines)
    received = bytearray()
    done = threading.Event()

    def receive() -> None:
        for chunk in channel.receive():
            received.extend(chunk)
            if len(received) >= expected:
                done.set()

    def send(sender: int) -> None:
        for line in lines[sender::senders]:
            channel.send(line)

    threading.Thread(target=receive, daemon=True).start()
    threads = [threading.Thread(target=send, args=(sender,)) for sender in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert done.wait(30), f"{len(received)} of {expected} bytes came back"
    assert sorted(bytes(received).splitlines(keepends=True)) == sorted(lines), "a line came back broken"
    return bytes(received)


def test_frames_cut_anywhere_come_back_whole_and_stderr_is_kept_apart() -> None:
    ours, peer = socket.socketpair()
    threading.Thread(target=echo_framed, args=(peer,), daemon=True).start()
    channel = channel_over(ours)
    try:
        talk(channel)
        pieces = channel.said.split(b"said: ")[1:]  # its last bytes (STDERR_KEPT), the first piece maybe cut
        assert pieces and all(0 < len(piece) <= 8 for piece in pieces), channel.said[-200:]
    finally:
        channel.close()


def test_a_receive_under_way_ends_when_the_channel_is_closed() -> None:
    ours, peer = socket.socketpair()
    channel = channel_over(ours)
    ended = threading.Event()

    def receive() -> None:
        list(channel.receive())
        ended.set()

    threading.Thread(target=receive, daemon=True).start()
    channel.close()
    assert ended.wait(5)
    peer.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for 127.0.0.1, made with openssl as the test cluster's are."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    yield cert, key


def test_over_tls_many_threads_sending_while_one_receives_lose_nothing(certificate: tuple[Path, Path]) -> None:
    """An SSL connection may not be read and written by two threads at once: the channel never does."""
    cert, key = certificate
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert, key)

        def serve() -> None:
            connection, _ = listener.accept()
            echo_framed(server.wrap_socket(connection, server_side=True))

        threading.Thread(target=serve, daemon=True).start()
        client = ssl.create_default_context(cafile=str(cert))
        ours = client.wrap_socket(socket.create_connection(listener.getsockname()), server_hostname="127.0.0.1")
        channel = channel_over(ours)
        try:
            talk(channel, senders=8, messages=200)
        finally:
            channel.close()
