"""panel.supervisor with real (tiny) child processes: restart with backoff, a named fatal cause, stop escalating to
SIGKILL, orphans re-parented to the supervisor stopped and reaped, the parent-death signal."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from panel import supervisor
from panel.supervisor import Fatal, Program, Supervisor

PY = sys.executable


@contextlib.contextmanager
def supervising():
    """A Supervisor in this test process; afterwards the process is no subreaper again and SIGCHLD is as it was."""
    lines: list[str] = []
    handler = signal.getsignal(signal.SIGCHLD)
    s = Supervisor(dict(os.environ), lines.append)
    s.lines = lines
    try:
        yield s
    finally:
        s.stop(grace=1)
        signal.signal(signal.SIGCHLD, handler)
        if supervisor._libc is not None:
            supervisor._libc.prctl(supervisor.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


@pytest.fixture
def sup():
    with supervising() as s:
        yield s


def check_until(sup: Supervisor, done, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sup.check()
        if done():
            return
        time.sleep(0.05)
    raise AssertionError(sup.lines)


def test_a_child_that_exits_is_restarted_with_growing_backoff(sup, monkeypatch):
    monkeypatch.setattr(supervisor, "BACKOFF", (0.2, 0.4, 0.8))
    prog = sup.start(Program("quitter", [PY, "-c", "import sys; sys.exit(3)"]))
    first = prog.proc.pid
    check_until(sup, lambda: prog.restarts == 2 and prog.due is None)
    assert prog.proc.pid != first
    assert sup.lines[0] == (f"quitter (pid {first}) exited with status 3; restarting in 0.2 s (restart 1); "
                            "the other processes keep running")
    assert "restarting in 0.4 s (restart 2)" in sup.lines[2]
    assert sup.lines[1].startswith("quitter restarted (pid ")


def test_a_named_cause_stops_instead_of_restarting(sup):
    sup.start(Program("redis", [PY, "-c", "import sys; sys.exit(1)"], diagnose=lambda: "its data file is damaged"))
    with pytest.raises(Fatal, match="its data file is damaged"):
        check_until(sup, lambda: False)


def test_stop_sigterms_then_sigkills_what_ignores_it(sup):
    stubborn = sup.start(Program("stubborn", [PY, "-c", "import signal, time; "
                                               "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', "
                                               "flush=True); time.sleep(60)"], stdout=subprocess.PIPE))
    polite = sup.start(Program("polite", [PY, "-c", "import time; time.sleep(60)"]))
    assert stubborn.proc.stdout.readline().strip() == b"ready"
    started = time.monotonic()
    sup.stop(grace=1)
    assert time.monotonic() - started < 10
    assert polite.proc.returncode == -15 and stubborn.proc.returncode == -9
    assert any("stubborn" in line and "did not stop within 1 s" in line for line in sup.lines)


def test_orphans_of_a_dead_child_come_back_and_are_stopped(sup):
    # The child starts a grandchild in a session of its own (as RQ's work horse is), then dies.
    prog = sup.start(Program("parent", [PY, "-c", "import subprocess, sys, time; "
                                        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
                                        "start_new_session=True); print(p.pid, flush=True); time.sleep(0.3)"],
                             stdout=subprocess.PIPE))
    grandchild = psutil.Process(int(prog.proc.stdout.readline()))
    check_until(sup, lambda: prog.restarts >= 1)
    assert not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE


def stopped(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_children_the_process_already_had_are_not_taken_for_orphans():
    """A process that starts supervising may have children of its own already — the test runner's, when a test
    drives a Supervisor in-process (Playwright's driver, whose death once failed a run): they are left alone."""
    own = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    try:
        with supervising() as sup:
            prog = sup.start(Program("parent", [PY, "-c", "import subprocess, sys, time; "
                                                "p = subprocess.Popen([sys.executable, '-c', 'import time; "
                                                "time.sleep(60)'], start_new_session=True); print(p.pid, "
                                                "flush=True); time.sleep(0.3)"], stdout=subprocess.PIPE))
            orphan = psutil.Process(int(prog.proc.stdout.readline()))
            check_until(sup, lambda: prog.restarts >= 1 and stopped(orphan))
            assert own.poll() is None  # the adopted orphan was stopped; our own child was not
    finally:
        own.kill()
        own.wait()


def test_children_are_told_to_die_with_the_supervisor(tmp_path):
    """A supervisor process SIGKILLed: its child (a sleeper) is stopped by the kernel."""
    # The module alone (not the panel package, whose imports take seconds): it needs only psutil.
    script = ("import importlib.util, os, sys, time; "
              f"spec = importlib.util.spec_from_file_location('sv', {supervisor.__file__!r}); "
              "sv = sys.modules['sv'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(sv); "
              "Program, Supervisor = sv.Program, sv.Supervisor; "
              "s = Supervisor(dict(os.environ), print); "
              "p = s.start(Program('sleeper', [sys.executable, '-c', 'import time; time.sleep(60)'])); "
              "print(p.proc.pid, flush=True); time.sleep(60)")
    boss = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    try:
        child = psutil.Process(int(boss.stdout.readline()))
        boss.kill()
        boss.wait(10)
        gone, alive = psutil.wait_procs([child], timeout=10)
        assert not alive
    finally:
        if boss.poll() is None:
            boss.kill()


def test_stop_last_children_are_stopped_after_the_others(sup, tmp_path):
    """Redis is stopped last: the worker and cron need it to shut down cleanly."""
    log = tmp_path / "order"
    code = ("import signal, sys, time\n"
            "def bye(*_):\n"
            "    time.sleep(float(sys.argv[2]))\n"
            "    open(sys.argv[3], 'a').write(sys.argv[1])\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    last = sup.start(Program("redis", [PY, "-c", code, "r", "0", str(log)], stop_last=True, stdout=subprocess.PIPE))
    first = sup.start(Program("worker", [PY, "-c", code, "w", "0.5", str(log)], stdout=subprocess.PIPE))
    for prog in (last, first):
        assert prog.proc.stdout.readline().strip() == b"ready"
    sup.stop(grace=5)
    assert log.read_text() == "wr"
