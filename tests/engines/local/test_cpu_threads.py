"""Only the inference thread keeps torch's parallel workers: a load leaves none behind on the
thread that asked for it, and requests are prepared on threads that end, one call at a time."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from pathlib import Path

import pytest

from loupe.engines.local.cpu_threads import OneAtATime, in_a_thread_of_its_own

# Threads of the operating system that Python does not know of (torch's parallel workers among
# them), before and after loading a model, in a process whose main thread has computed nothing.
# A thread that has ended can take a moment to leave /proc: the count is read until it is back
# or 10 s have passed.
_NATIVE_THREADS = """
import os, sys, threading, time
import torch
from loupe.engines.local.loader import load_model
native = lambda: len(os.listdir("/proc/self/task")) - threading.active_count()
before = native()
load_model(sys.argv[1])
deadline = time.monotonic() + 10
while native() > before and time.monotonic() < deadline:
    time.sleep(0.05)
print(before, native(), torch.get_num_threads())
"""


def test_a_load_leaves_no_parallel_workers_behind(tiny_checkpoint: Callable[[str], Path]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _NATIVE_THREADS, str(tiny_checkpoint("qwen2-vl"))],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    before, after, threads = map(int, out.stdout.split()[-3:])
    assert after == before, f"{after - before} native threads stayed after the load ({threads} torch threads)"


def test_work_on_a_thread_of_its_own_returns_or_raises_in_the_caller() -> None:
    ran_on: list[threading.Thread] = []

    def work() -> int:
        ran_on.append(threading.current_thread())
        return 7

    assert in_a_thread_of_its_own(work) == 7
    assert ran_on[0] is not threading.current_thread() and not ran_on[0].is_alive()
    with pytest.raises(ZeroDivisionError):
        in_a_thread_of_its_own(lambda: 1 // 0)


def test_calls_run_one_at_a_time_in_order_each_on_a_thread_that_ends() -> None:
    executor = OneAtATime("test")
    running, most, order, threads = [0], [0], [], []
    lock = threading.Lock()

    def call(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.01)
        order.append(i)
        threads.append(threading.current_thread())
        with lock:
            running[0] -= 1
        return i * i

    futures = [executor.submit(call, i) for i in range(6)]
    assert [f.result(timeout=30) for f in futures] == [i * i for i in range(6)]
    executor.shutdown(wait=True)
    assert order == list(range(6)) and most[0] == 1
    assert len({id(t) for t in threads}) == 6 and not any(t.is_alive() for t in threads)


def test_a_failing_call_fails_its_future_only_and_shutdown_cancels_the_waiting() -> None:
    executor = OneAtATime("test")
    gate = threading.Event()
    first = executor.submit(gate.wait, 30)
    failing = executor.submit(lambda: 1 // 0)
    after = executor.submit(lambda: "ran")
    assert not failing.done() and not after.done()  # waiting for the first
    gate.set()
    assert first.result(timeout=30) is True
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=30)
    assert after.result(timeout=30) == "ran"

    gate.clear()
    running = executor.submit(gate.wait, 30)
    waiting = executor.submit(lambda: "never")
    executor.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert running.result(timeout=30) is True
    with pytest.raises(CancelledError):
        waiting.result(timeout=30)
    executor.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        executor.submit(lambda: None)
