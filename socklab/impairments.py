"""Link conditions (loss, delay, rate) as shell lines a host runs on its own interface.

``tc netem`` does all three where the kernel has ``sch_netem``. Where it
does not, loss falls back to the firewall's ``statistic`` match (a random
drop of arriving packets) and rate to ``tbf``; delay has no fallback, so it
fails loudly instead of being silently ignored. Each host says on stdout
which mechanism it used, and the report keeps that line.

A packet, to the kernel, is not always a packet on the wire: a sender hands
a virtual link TCP segments of up to 64 KiB (TSO and GSO, cut into wire-sized
frames only where a real card would), so a loss of 5% would drop 5% of 64 KiB
bursts, and a 1 MB transfer would cross in a score of packets, often losing
none. Each host's interface on an impaired network therefore sends frames no
bigger than its MTU (``gso_max_size``), and a loss rate counts the packets a
real link would carry.
"""

from __future__ import annotations

import shlex

from socklab.model import LinkConditions

TBF_SHAPE = "burst 32kbit latency 400ms"
NO_DELAY = 3  # exit status of a host that was asked for delay without netem


def describe(conditions: LinkConditions) -> str:
    parts = []
    if conditions.loss:
        parts.append(f"loss {conditions.loss:.0%}")
    if conditions.delay_ms:
        parts.append(f"delay {conditions.delay_ms:g} ms")
    if conditions.rate:
        parts.append(f"rate {conditions.rate}")
    return ", ".join(parts)


def commands(address: str, network: str, conditions: LinkConditions) -> list[str]:
    """Shell lines applying ``conditions`` to the interface that holds ``address``."""
    if not conditions:
        return []
    netem = "netem"
    if conditions.delay_ms:
        netem += f" delay {conditions.delay_ms:g}ms"
    if conditions.loss:
        netem += f" loss {conditions.loss * 100:g}%"
    tbf = f"tbf rate {conditions.rate} {TBF_SHAPE}" if conditions.rate else ""

    with_netem = [f'tc qdisc add dev "$dev" parent 1: handle 2: {tbf}'] if tbf else []
    with_netem.append(_say(f"{network}: {describe(conditions)} with tc netem"))

    fallback = []
    if conditions.delay_ms:
        fallback += [_say(f"{network}: cannot add {conditions.delay_ms:g} ms of delay: this kernel has no "
                          "sch_netem (tc netem), and nothing else here can delay packets", to_stderr=True),
                     f"exit {NO_DELAY}"]
    if conditions.loss:
        fallback += [f'{tool} -A INPUT -i "$dev" -m statistic --mode random --probability {conditions.loss:g} -j DROP'
                     for tool in ("iptables", "ip6tables")]
    if tbf:
        fallback.append(f'tc qdisc add dev "$dev" root {tbf}')
    tools = " and ".join(name for name, used in (("iptables statistic", conditions.loss), ("tbf", tbf)) if used)
    fallback.append(_say(f"{network}: {describe(conditions)} with {tools} (no sch_netem here)"))

    return [
        f"dev=$(ip -o addr show to {shlex.quote(address)} | cut -d' ' -f2)",
        'ip link set dev "$dev" gso_max_size "$(cat /sys/class/net/$dev/mtu)"',
        f'if tc qdisc add dev "$dev" root handle 1: {netem} 2>/dev/null; then',
        *(f"    {line}" for line in with_netem),
        "else",
        *(f"    {line}" for line in fallback),
        "fi",
    ]


def _say(text: str, to_stderr: bool = False) -> str:
    return f"echo {shlex.quote(text)}" + (" >&2" if to_stderr else "")
