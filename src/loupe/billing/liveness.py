"""Who this process is, and whether a process that ran on this same machine is still running.

"Same machine" means the same kernel boot and the same pid namespace (a container has its own),
read from Linux's /proc; only then does a pid name the same process for both sides. A pid that no
longer exists, or now belongs to a process started at another time, or to a zombie, has exited.
Elsewhere (another host, another container, or no /proc) this module cannot tell, and says so.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process as others sharing the database see it.

    `machine` is the kernel boot id and pid namespace, None where /proc cannot say; `start_ticks`
    is the start time in clock ticks after boot, which tells a reused pid apart.
    """

    host: str
    pid: int
    machine: str | None
    start_ticks: int | None


def this_process(proc: Path = PROC) -> ProcessIdentity:
    return process_identity(os.getpid(), proc)


def process_identity(pid: int, proc: Path = PROC) -> ProcessIdentity:
    """The identity of process `pid` of this machine (this one, or a child it started)."""
    machine = machine_of(proc)
    return ProcessIdentity(socket.gethostname(), pid, machine, _stat(pid, proc)[1] if machine else None)


def machine_of(proc: Path = PROC) -> str | None:
    """This kernel boot and pid namespace, or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        boot = (proc / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(proc / "self/ns/pid")
    except OSError:
        return None
    return f"{boot} {namespace}"


def is_running(other: ProcessIdentity, here: ProcessIdentity, proc: Path = PROC) -> bool | None:
    """Whether `other` still runs: True or False when it ran on this machine, None when unknown."""
    if here.machine is None or other.machine != here.machine or other.pid <= 0:
        return None
    try:
        os.kill(other.pid, 0)  # only reached on Linux: signal 0 checks existence, sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    except OSError:
        return None
    state, ticks = _stat(other.pid, proc)
    if state is None or other.start_ticks is None:
        return True  # it exists, but /proc hides it (mounted with hidepid): trust the pid
    return state not in {"Z", "X"} and ticks == other.start_ticks


def _stat(pid: int, proc: Path) -> tuple[str | None, int | None]:
    """The state letter and start time (clock ticks after boot) from /proc/PID/stat."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None, None
    # The command name (field 2) may hold spaces or ')': fields 3 on follow the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])
