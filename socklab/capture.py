"""Packet captures: tcpdump on every interface of a host, loopback included.

The loopback lessons happen on ``lo`` and the network ones on ``eth*``, so a
scenario's capture records each interface to its own pcap. tcpdump runs as
root (it keeps root rather than switching to its own user, which would need
a capability lab hosts do not have) and writes where root may write. It runs
in immediate mode: libpcap otherwise hands packets over in blocks up to a
second late, and an interrupted tcpdump drops the pending block. Its kernel
buffer is 8 MiB instead of 2: a lab making hundreds of connections while
tcpdump waits for a CPU otherwise loses packets (what it lost, it says in its
log as "dropped by kernel"). The start script returns only once every
tcpdump says it is listening, so no packet of the lesson is missed; the stop
script interrupts them (tcpdump then flushes and exits) and waits until they
are gone.

Each file is a classic pcap of link type Ethernet (1), ``lo`` included
(Linux shows loopback as Ethernet with zero addresses); ``invoke capture``'s
``-i any`` gives Linux cooked captures instead. ``socklab.packets`` reads
either, and report.html draws from them each check's packets as a ladder
(``socklab.ladder``).
"""

from __future__ import annotations

CAPTURE_DIR = "/var/lib/socklab/capture"
LIVE_PIDFILE = "/var/lib/socklab/live-capture.pid"
BUFFER_KIB = 8192  # the kernel's capture buffer: tcpdump starved of CPU (a busy lab on two cores) keeps up
START_LIMIT_TICKS = 500  # polls of 10 ms each: tcpdump normally listens within a few

START = f"""
set -e
mkdir -p {CAPTURE_DIR}
for dev in $(ls /sys/class/net); do
    tcpdump -i "$dev" -n -U --immediate-mode -B {BUFFER_KIB} -Z root -w "{CAPTURE_DIR}/$dev.pcap" \
        >"{CAPTURE_DIR}/$dev.log" 2>&1 &
    echo $! >"{CAPTURE_DIR}/$dev.pid"
done
for dev in $(ls /sys/class/net); do
    ticks=0
    until grep -q "listening on" "{CAPTURE_DIR}/$dev.log"; do
        ticks=$((ticks + 1))
        if [ "$ticks" -gt {START_LIMIT_TICKS} ]; then cat "{CAPTURE_DIR}/$dev.log" >&2; exit 1; fi
        sleep 0.01
    done
done
"""

STOP = f"""
for pidfile in {CAPTURE_DIR}/*.pid; do
    kill -INT "$(cat "$pidfile")" 2>/dev/null || true
done
for pidfile in {CAPTURE_DIR}/*.pid; do
    while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.01; done
done
"""

LIVE = f'echo $$ >{LIVE_PIDFILE}; exec tcpdump -i "$1" -n -U --immediate-mode -Z root -w - 2>/dev/null'
LIVE_STOP = f'kill -INT "$(cat {LIVE_PIDFILE})" 2>/dev/null || true'


def start_argv() -> list[str]:
    return ["sh", "-c", START]


def stop_argv() -> list[str]:
    return ["sh", "-c", STOP]


def live_argv(interface: str) -> list[str]:
    """``tcpdump -w -`` on one interface (``any`` for all), with its pid kept for stopping it."""
    return ["sh", "-c", f"mkdir -p {CAPTURE_DIR}; {LIVE}", "capture", interface]


def live_stop_argv() -> list[str]:
    return ["sh", "-c", LIVE_STOP]


def pcaps(files: dict[str, bytes]) -> dict[str, bytes]:
    """The pcap files among what was read back from the capture folder, by interface name."""
    return {name.removesuffix(".pcap"): data for name, data in files.items() if name.endswith(".pcap")}
