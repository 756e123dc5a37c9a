from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import replace

import pytest

from loupe.billing.liveness import ProcessIdentity, is_running, machine_of, process_identity, this_process

pytestmark = pytest.mark.skipif(machine_of() is None, reason="needs Linux /proc")  # CI runs Linux


def test_this_process_is_running() -> None:
    me = this_process()
    assert me.pid == os.getpid() and me.machine and me.start_ticks
    assert is_running(me, me) is True


def test_a_killed_process_is_not_running_zombie_or_reaped(child: subprocess.Popen[bytes]) -> None:
    here, other = this_process(), process_identity(child.pid)
    assert is_running(other, here) is True
    os.kill(child.pid, signal.SIGKILL)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not yet reaped: a zombie
    assert is_running(other, here) is False
    child.wait()
    assert is_running(other, here) is False


def test_a_reused_pid_is_another_process(child: subprocess.Popen[bytes]) -> None:
    other = process_identity(child.pid)
    assert other.start_ticks is not None
    earlier = replace(other, start_ticks=other.start_ticks - 1)
    assert is_running(earlier, this_process()) is False


def test_another_machine_or_namespace_cannot_be_told(child: subprocess.Popen[bytes]) -> None:
    here, other = this_process(), process_identity(child.pid)
    assert is_running(replace(other, machine="another-boot pid:[1]"), here) is None
    assert is_running(other, replace(here, machine=None)) is None
    assert is_running(ProcessIdentity("h", 0, here.machine, None), here) is None  # never a process group
