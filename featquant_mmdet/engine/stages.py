"""A runner of multi-step jobs: steps with dependencies, done-markers for resume, parallel jobs, timing, and a quiet
console.

A :class:`Step` is a name, the steps it depends on and a ``plan`` function, called when the step is about to start
(its inputs exist by then), that returns a :class:`Plan`: at most one command (argv), the files the step leaves, the
folders to empty first. In-process work goes in the step's ``after`` (run once the command has succeeded).

Resume: a finished step leaves a marker ``<state_dir>/<name>.json``, written last, holding its command (argv[0],
the interpreter, left out: another environment computes the same) and the finishing times of the markers it used.
A rerun skips a step whose marker matches and whose outputs exist, and redoes it otherwise -- and with it whatever
used it, whose markers name the old finishing time. A killed run loses only the steps that were running.

Console: one line per step (done, skipped or failed) and a progress line (steps done, those running, elapsed time
and the remaining time estimated from the steps' ``weight``); each command's stdout and stderr go to
``<log_dir>/<name>.log`` (the plan's ``log_dir``, else the state dir). A failure names the log and shows its tail.
"""
import os
import os.path as osp
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, TextIO, Tuple

import torch

from ..fileio import read_json, utc_now, write_json_atomic


class StageError(RuntimeError):
    """A failed step or bad input: the message says what went wrong and what to do."""


class StagesInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the running commands are stopped, the finished steps kept."""


@dataclass
class Plan:
    """What a step runs: ``command`` (argv; None for a step whose work is all in ``Step.after``), the files it
    leaves, the folders emptied before it starts, where its log goes, a note for the console."""

    command: Optional[List[str]] = None
    outputs: List[str] = field(default_factory=list)
    clear: List[str] = field(default_factory=list)
    log_dir: Optional[str] = None
    note: str = ''


@dataclass
class Step:
    """``name`` (unique; the marker's and the log's file name), ``plan`` (called when the step starts), the steps
    it needs, a title for the console, its relative duration (``weight``, for the remaining-time estimate) and
    in-process work after the command (``after``; returns what to add to the marker)."""

    name: str
    plan: Callable[[], Plan]
    deps: Sequence[str] = ()
    title: str = ''
    weight: float = 1.0
    after: Optional[Callable[[], dict]] = None


@dataclass
class _Running:
    step: Step
    plan: Plan
    key: dict
    start: float
    proc: Optional[subprocess.Popen] = None
    log_path: str = ''
    cpu_s: float = 0.0

    def poll(self) -> Optional[int]:
        """The exit status once the process ended (reaped with its CPU time, children included), else None."""
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return None
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def log_tail(path: str, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file (what a failed command printed last)."""
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:]).rstrip('\n')
    except OSError:
        return f'(no log: {path})'


def check_writable_folder(path: str, what: str, option: str) -> str:
    """Create ``path`` if needed and write a file into it; a clear error says which folder and what to pass."""
    path = osp.abspath(path)
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix='.write-test-'):
            pass
    except OSError as err:
        raise StageError(f'cannot write to the {what} {path} ({type(err).__name__}: {err.strerror or err}); pass '
                         f'{option} with a folder you can write to') from None
    return path


def estimate_left(ran: Sequence[Tuple[float, float]], running: Sequence[Tuple[float, float]],
                  pending: Sequence[float], jobs: int) -> Optional[float]:
    """Seconds left: a step of weight ``w`` takes ``w * r`` seconds, ``r`` = wall seconds per unit of weight of the
    steps that ran (``(weight, wall_s)``); a running step ``(weight, elapsed_s)`` has what it has not used yet left;
    ``jobs`` steps share the work. ``None`` until a step with a weight has run."""
    weight = sum(w for w, _ in ran)
    if weight <= 0:
        return None
    rate = sum(t for _, t in ran) / weight
    work = sum(max(0.0, w * rate - t) for w, t in running) + rate * sum(pending)
    return work / max(1, min(jobs, len(running) + len(pending)))


class StageRunner:
    """Runs ``steps`` in order, up to ``jobs`` at a time once the steps they need have finished.

    ``env``: the commands' environment (default: this process's); ``out``: where the console lines go.
    """

    def __init__(self, steps: Sequence[Step], state_dir: str, jobs: int = 1, env: Optional[dict] = None,
                 cwd: Optional[str] = None, out: TextIO = sys.stdout, tail_lines: int = 20):
        names = [s.name for s in steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        unknown = sorted({d for s in steps for d in s.deps if d not in names})
        if duplicates or unknown or jobs < 1:
            raise StageError(f'bad step list: duplicate names {duplicates}, unknown dependencies {unknown}, '
                             f'jobs {jobs} (>= 1)')
        self.steps, self.state_dir, self.jobs = list(steps), osp.abspath(state_dir), jobs
        self.env, self.cwd, self.out, self.tail_lines = env, cwd, out, tail_lines
        self.timings: Dict[str, dict] = {}
        self._reused: Dict[str, Plan] = {}  # steps whose markers match before the run: left out of the time left
        self._start = time.perf_counter()
        self.load_at_start = os.getloadavg()
        self._tty = hasattr(out, 'isatty') and out.isatty()

    # ---- console

    def say(self, line: str) -> None:
        self.out.write(('\r\x1b[K' if self._tty else '') + line + '\n')
        self.out.flush()

    def _number(self, step: Step) -> str:
        """``[k/N]``: the k-th step to end (done, skipped or failed) of N; the step's own name follows."""
        return f'[{len(self.timings) + (step.name not in self.timings)}/{len(self.steps)}]'

    def progress(self, running: Sequence[_Running]) -> None:
        """Steps done, those running, elapsed time and the remaining time (:func:`estimate_left`)."""
        done = [s for s in self.steps if s.name in self.timings]
        ran = [(s.weight, self.timings[s.name]['wall_s']) for s in done if self.timings[s.name]['status'] == 'ran']
        now = time.perf_counter()
        left = estimate_left(ran, [(r.step.weight, now - r.start) for r in running],
                             [s.weight for s in self.steps if s.name not in self.timings and s.name not in self._reused
                              and all(r.step is not s for r in running)], self.jobs)
        estimate = (f'about {format_seconds(left)} left' if left is not None else 'estimating the time left') \
            if len(done) < len(self.steps) else 'nothing left'
        names = ', '.join(r.step.name for r in running) or 'nothing'
        line = (f'progress: {len(done)}/{len(self.steps)} steps done, running {names}; elapsed '
                f'{format_seconds(now - self._start)}, {estimate}')
        self.out.write(f'\r\x1b[K{line}' if self._tty else line + '\n')
        self.out.flush()

    # ---- markers

    def marker_path(self, name: str) -> str:
        return osp.join(self.state_dir, f'{name}.json')

    def step_key(self, step: Step, plan: Plan) -> dict:
        deps = {}
        for dep in step.deps:
            marker = read_json(self.marker_path(dep))
            deps[dep] = marker['finished_at'] if marker else None
        return dict(commands=[plan.command[1:]] if plan.command else [], deps=deps)

    def finished_marker(self, step: Step, plan: Plan, key: dict) -> Optional[dict]:
        """The step's marker if it matches ``key`` and its outputs exist: the step is done."""
        marker = read_json(self.marker_path(step.name))
        if marker is None or marker.get('key') != key or marker.get('outputs') != plan.outputs:
            return None
        return marker if all(osp.exists(p) for p in plan.outputs) else None

    def find_reused(self) -> Dict[str, Plan]:
        """The steps that a run will skip, with their plans: those whose marker matches now and whose needed steps
        are skipped too (steps are listed after what they need; only steps with a marker are planned). A resumed
        study's time-left estimate counts only the work still to do."""
        reused: Dict[str, Plan] = {}
        for step in self.steps:
            if osp.exists(self.marker_path(step.name)) and all(d in reused for d in step.deps):
                plan = step.plan()
                if self.finished_marker(step, plan, self.step_key(step, plan)) is not None:
                    reused[step.name] = plan
        return reused

    # ---- steps

    def start(self, step: Step) -> Optional[_Running]:
        """Skip the step when its marker matches, else clear its unfinished outputs and start its command."""
        plan = self._reused.pop(step.name, None) or step.plan()
        key = self.step_key(step, plan)
        done = self.finished_marker(step, plan, key)
        title = step.title or step.name
        if done is not None:
            when = done['finished_at'][:19].replace('T', ' ')
            self.say(f'{self._number(step)} {title} -- skipped, done on {when} UTC in {done["wall_s"]:.0f} s')
            self.timings[step.name] = dict(status='skipped', wall_s=0.0, previous_wall_s=done['wall_s'])
            return None
        for folder in plan.clear:
            if osp.isdir(folder):
                shutil.rmtree(folder)
        run = _Running(step, plan, key, time.perf_counter())
        if plan.command:
            log_dir = plan.log_dir or self.state_dir
            os.makedirs(log_dir, exist_ok=True)
            run.log_path = osp.join(log_dir, f'{step.name}.log')
            with open(run.log_path, 'w') as log:
                log.write(f'$ {" ".join(plan.command)}\n')
                log.flush()
                run.proc = subprocess.Popen(plan.command, cwd=self.cwd, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return run

    def finish(self, run: _Running) -> None:
        """After the command succeeded: in-process work, outputs checked, then the marker (last)."""
        step, plan = run.step, run.plan
        info = step.after() if step.after else {}
        wall = time.perf_counter() - run.start
        missing = [p for p in plan.outputs if not osp.exists(p)]
        if missing:
            raise StageError(f'step {step.name} finished but did not write {missing}'
                             + (f' (log: {run.log_path})' if run.log_path else ''))
        self.timings[step.name] = dict(status='ran', wall_s=wall, cpu_s=run.cpu_s)
        write_json_atomic(self.marker_path(step.name), dict(key=run.key, outputs=plan.outputs, wall_s=wall,
                                                            cpu_s=run.cpu_s, finished_at=utc_now(), **info))
        note = f'; {plan.note}' if plan.note else ''
        log = f'; log: {run.log_path}' if run.log_path else ''
        self.say(f'{self._number(step)} {step.name} done in {wall:.1f} s (CPU {run.cpu_s:.1f} s){note}{log}')

    def failure(self, run: _Running, code: int) -> str:
        return (f'step {run.step.name} failed: the command exited with status {code}:\n  '
                f'{" ".join(run.plan.command)}\nlast lines of its log {run.log_path}:\n'
                f'{log_tail(run.log_path, self.tail_lines)}\nFix the cause and rerun the same command: the '
                'finished steps are reused.')

    def run(self) -> Dict[str, dict]:
        """Run every step (or reuse it); returns the timings. :class:`StageError` on a failed step, once the steps
        running beside it have ended; :class:`StagesInterrupted` on SIGINT/SIGTERM of a command."""
        os.makedirs(self.state_dir, exist_ok=True)
        self._reused = self.find_reused()
        pending, running, finished, failures = list(self.steps), [], set(), []
        ended = False  # a step ended: the progress line follows once the next steps have started
        try:
            while pending or running:
                while not failures and len(running) < self.jobs:
                    ready = next((s for s in pending if all(d in finished for d in s.deps)), None)
                    if ready is None:
                        break
                    pending.remove(ready)
                    run = self.start(ready)
                    if run is not None and run.proc is None:
                        self.finish(run)
                    if run is None or run.proc is None:
                        finished.add(ready.name)
                    else:
                        running.append(run)
                        if self._tty:  # a log file gets the progress line once a step ends
                            self.progress(running)
                if not running:
                    break
                if ended:
                    self.progress(running)
                    ended = False
                time.sleep(0.1)
                for run in list(running):
                    code = run.poll()
                    if code is None:
                        continue
                    running.remove(run)
                    if code == 0:
                        self.finish(run)
                        finished.add(run.step.name)
                    elif code < 0 and -code in (signal.SIGINT, signal.SIGTERM):
                        raise StagesInterrupted()
                    else:
                        failures.append(self.failure(run, code))
                        self.say(f'{self._number(run.step)} {run.step.name} FAILED (status {code}); log: '
                                 f'{run.log_path}' + (f'; waiting for {", ".join(r.step.name for r in running)}'
                                                      if running else ''))
                    ended = True
        except BaseException:
            for run in running:
                run.stop()
            raise
        if failures:
            raise StageError(failures[0])
        self.progress([])
        if self._tty:
            self.out.write('\n')
        return self.timings

    def timing_table(self) -> List[str]:
        """Wall and CPU time per step, for the end of a run."""
        lines = [f'  {"step":<20} {"wall":>9} {"CPU":>9}']
        for name, t in self.timings.items():
            shown = (f'{t["wall_s"]:7.1f} s {t["cpu_s"]:7.1f} s' if t['status'] == 'ran' else
                     f'skipped (took {t["previous_wall_s"]:.0f} s)')
            lines.append(f'  {name:<20} {shown}')
        return lines

    def run_record(self, **extra) -> dict:
        """What ran, how long each step took and on which machine (the load average tells a shared one), plus
        ``extra``: the content of a run record file."""
        device = (f'cuda ({torch.cuda.get_device_name(0)})' if torch.cuda.is_available() else
                  f'cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})')
        return dict(command=' '.join([osp.basename(sys.argv[0])] + sys.argv[1:]), device=device,
                    finished_at=utc_now(), steps=dict(self.timings),
                    load_average=dict(start=self.load_at_start, end=os.getloadavg()), **extra)
