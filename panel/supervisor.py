"""A small process supervisor for ``flask serve``: owns its children, restarts the ones that die, leaves none behind.

Why not supervisord, honcho or circus: none of them can promise "no orphans" when the supervisor itself is
SIGKILLed (that needs PR_SET_PDEATHSIG in every child, and in RQ's work horse, which moves into a process group of
its own); supervisord restarts a program that ran past ``startsecs`` at once, without backoff, and honcho stops
everything when one process exits. What is needed is this much:

- every child runs in a session (process group) of its own, and is told by the kernel to stop (``death_signal``)
  the moment the supervisor dies, however it dies;
- the supervisor is a child subreaper: descendants orphaned by a dead child (gunicorn's workers, a work horse)
  come back to it, and are stopped and reaped;
- a child that exits is restarted after 1, 2, 4 … 30 seconds (back to 1 once it has stayed up a minute), logged,
  while the others keep running; a child may name a fatal cause instead (``diagnose``), which stops everything;
- stop: SIGTERM to each child's process group (the last started first), then SIGKILL to whatever is left,
  descendants in other process groups included.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import psutil

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
BACKOFF = (1, 2, 4, 8, 16, 30)  # seconds before the 1st, 2nd, … restart
STABLE = 60.0                    # a child up this long starts its backoff from the beginning again
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(sig: int, parent: int | None = None) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux; a no-op elsewhere). When the
    parent is already gone (it died before this call), exit at once: the signal would never come."""
    if _libc is None:
        return
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process instead of init (Linux; a no-op elsewhere)."""
    if _libc is not None:
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@dataclass
class Program:
    """One supervised command. ``diagnose()`` may name a fatal cause after it exits (None: just restart)."""

    name: str
    argv: list[str]
    death_signal: int = signal.SIGTERM
    stop_last: bool = False  # stopped after the others (they need it to shut down cleanly)
    diagnose: Callable[[], str | None] | None = None
    stdout: object = None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    due: float | None = None  # when a restart is due (monotonic), while waiting for it


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"status {code}"


class Fatal(RuntimeError):
    """A child cannot run, for a reason it named: stop everything and say why."""


def _identity(proc: psutil.Process) -> tuple[int, float] | None:
    """PID and start time (a reused PID is another process), or None for a process already gone."""
    try:
        return proc.pid, proc.create_time()
    except psutil.Error:
        return None


class Supervisor:
    """Start, watch, restart and stop a list of Programs (see the module docstring)."""

    def __init__(self, env: dict, log: Callable[[str], None]):
        self.env, self.log = env, log
        self.programs: list[Program] = []
        self.orphaned = True  # a child exited since the last look for adopted orphans (SIGCHLD)
        # Children this process had before it supervised anything are its own business, never orphans: none when
        # `flask serve` execs the supervisor; a test runner's helpers (a browser driver) when a test drives one.
        self.before = {_identity(c) for c in psutil.Process().children()} - {None}
        become_subreaper()
        signal.signal(signal.SIGCHLD, self._on_child)

    def _on_child(self, _signum, _frame) -> None:
        self.orphaned = True

    def start(self, program: Program) -> Program:
        """Start ``program`` (again) in a new session that dies with this process."""
        me = os.getpid()
        program.proc = subprocess.Popen(
            program.argv, env=self.env, start_new_session=True, stdout=program.stdout,
            stderr=subprocess.STDOUT if program.stdout is not None else None,
            preexec_fn=lambda: die_with_parent(program.death_signal, me))
        program.started, program.due = time.monotonic(), None
        if program not in self.programs:
            self.programs.append(program)
        return program

    def pids(self) -> dict[str, int]:
        """Running children by name."""
        return {p.name: p.proc.pid for p in self.programs if p.proc is not None and p.proc.poll() is None}

    def check(self) -> None:
        """Notice exits (schedule a restart, or raise Fatal), start the restarts that are due, reap adopted orphans."""
        now = time.monotonic()
        for program in self.programs:
            if program.due is not None:
                if now >= program.due:
                    self.start(program)
                    self.log(f"{program.name} restarted (pid {program.proc.pid})")
                continue
            if program.proc.poll() is None:
                continue
            code = program.proc.returncode
            self._kill_remains(program)
            cause = program.diagnose() if program.diagnose else None
            if cause:
                raise Fatal(cause)
            if now - program.started >= STABLE:
                program.restarts = 0
            wait = BACKOFF[min(program.restarts, len(BACKOFF) - 1)]
            program.restarts += 1
            program.due = now + wait
            self.log(f"{program.name} (pid {program.proc.pid}) exited with {_describe(code)}; restarting in "
                     f"{wait} s (restart {program.restarts}); the other processes keep running")
        self._reap_adopted()

    def _kill_remains(self, program: Program) -> None:
        """After a child died: what is left of its process group (e.g. gunicorn's workers), SIGKILLed. Its
        descendants in other groups (a work horse) come back to us as orphans: see _reap_adopted."""
        try:
            os.killpg(program.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _reap_adopted(self) -> None:
        """Orphans re-parented to us (we are their subreaper): stop and reap them. Looked for only after a SIGCHLD,
        since listing our children reads /proc."""
        if not self.orphaned:
            return
        self.orphaned = False
        ours = {p.proc.pid for p in self.programs if p.proc is not None}
        orphans = [c for c in psutil.Process().children() if c.pid not in ours and not self._had(c)]
        for child in orphans:
            try:
                child.kill()
            except psutil.Error:
                pass
        for child in orphans:
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass

    def _had(self, child: psutil.Process) -> bool:
        return _identity(child) in self.before

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every child's process group at once (those marked ``stop_last`` — what the others need to
        shut down cleanly, e.g. Redis — afterwards), wait up to ``grace`` s, then SIGKILL whatever is left."""
        for last in (False, True):
            group = [p for p in self.programs if p.stop_last is last and p.proc is not None]
            for program in group:
                if program.proc.poll() is None:
                    try:
                        os.killpg(program.proc.pid, signal.SIGTERM)
                    except (ProcessLookupError, PermissionError):
                        pass
            deadline = time.monotonic() + grace
            for program in group:
                try:
                    program.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.log(f"{program.name} (pid {program.proc.pid}) did not stop within {grace:.0f} s; "
                             "killing it")
                self._kill_remains(program)
                program.proc.wait()
            self.orphaned = True
            self._reap_adopted()  # e.g. the work horse of a worker that had to be killed
