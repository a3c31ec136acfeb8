"""The machine's lab slots: at most so many labs at once, all runs together, and a killed holder frees its slot."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from socklab import slots
from socklab.errors import Interrupted
from socklab.interrupts import Interruptions


@pytest.fixture(autouse=True)
def two_slots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(slots.SLOTS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(slots.SLOTS_ENV, "2")


def test_a_third_lab_waits_until_one_of_two_is_done() -> None:
    order: list[str] = []
    with slots.held() as first, slots.held() as second:
        assert {first, second} == {0, 1}
        third = threading.Thread(target=lambda: _hold(order, "third"))
        third.start()
        time.sleep(0.3)
        assert order == [], "no slot was free: the third waits"
        order.append("released")
    third.join(timeout=5)
    assert order == ["released", "third"]


def test_a_signal_ends_the_wait() -> None:
    guard = Interruptions()
    with slots.held(), slots.held():
        guard.cancelled.set()
        with pytest.raises(Interrupted), slots.held(guard):
            pass


def test_a_slot_of_a_killed_run_is_free_at_once(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time\nfrom socklab import slots\n"
                               "with slots.held(), slots.held():\n    print('held', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        guard = Interruptions()
        guard.cancelled.set()
        with pytest.raises(Interrupted), slots.held(guard):  # both are taken
            pass
    finally:
        holder.kill()
        holder.wait()
    with slots.held() as number:  # the kernel let go of the dead run's locks
        assert number == 0
    assert oct((tmp_path / "socklab-slots").stat().st_mode & 0o7777) == "0o1777", "every user may take a slot"


def test_the_default_is_a_few_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(slots.SLOTS_ENV)
    monkeypatch.setattr(slots.os, "cpu_count", lambda: 2)
    assert slots.count() == 2 * slots.SLOTS_PER_CPU


def _hold(order: list[str], name: str) -> None:
    with slots.held():
        order.append(name)
