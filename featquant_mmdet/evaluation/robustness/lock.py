"""One sweep at a time per results file: ``<work_dir>/robustness.lock`` (standard library only).

Two sweeps writing one results file would interleave their cells, and one's ``os.replace`` would drop the other's.
The lock is a POSIX record lock (``fcntl.lockf``) on the lock file:

* the kernel releases it when the holder exits, however it dies (SIGKILL included): a lock is never stale;
* unlike ``flock`` it is not shared with forked children, so dataloader workers that outlive a killed sweep for a
  few seconds do not keep it.

The file records the holder (pid, host, start time, command) for the error of the sweep that finds it locked; it
is emptied, not removed, on release (a removed file would let a third sweep lock a new file while a second still
holds the old one). Not re-entrant: record locks belong to the process, so a second ``lockf`` from the same
process would succeed and closing either descriptor would drop both; a second acquisition in the process that
holds the lock is refused instead. With a distributed launcher only rank 0 locks (the other ranks evaluate the
cells rank 0 chose).
"""
import datetime
import errno
import fcntl
import json
import os
import os.path as osp
import socket
import sys
from typing import Optional

from .errors import RobustnessError, SweepLockedError

# mmengine's init_dist reads the rank from these (the lock is taken before the Runner initialises the process group)
_LAUNCHER_RANK_VARS = {'pytorch': 'RANK', 'slurm': 'SLURM_PROCID', 'mpi': 'OMPI_COMM_WORLD_RANK'}
_HELD_HERE = set()  # real paths of the lock files this process holds


def lock_path(results_path: str) -> str:
    """``<work_dir>/robustness.lock`` for ``<work_dir>/robustness.json``."""
    return osp.splitext(osp.abspath(results_path))[0] + '.lock'


def launcher_rank(launcher: Optional[str] = 'none') -> int:
    """This process's global rank: from the process group once it exists, else from the launcher's environment
    (0 without a launcher; the lock needs nothing beyond the standard library then)."""
    var = _LAUNCHER_RANK_VARS.get(launcher or 'none')
    if var is None:
        return 0
    from mmengine.dist import get_rank, is_distributed  # only with a launcher: the lock stays importable alone
    return get_rank() if is_distributed() else int(os.environ.get(var, 0))


class SweepLock:
    """Exclusive lock of a results file for the duration of a sweep (a context manager)."""

    def __init__(self, results_path: str, launcher: Optional[str] = 'none'):
        self.results_path = osp.abspath(results_path)
        self.path = lock_path(results_path)
        self.enabled = launcher_rank(launcher) == 0
        self._fd: Optional[int] = None

    def acquire(self) -> 'SweepLock':
        """Take the lock, or raise :class:`SweepLockedError` naming the holder at once (never waits)."""
        if not self.enabled:
            return self
        if self._fd is not None or osp.realpath(self.path) in _HELD_HERE:
            raise SweepLockedError(f'{self.path} is already held by this process (pid {os.getpid()}): a sweep locks '
                                   'its work dir once, in the entry point that plans and runs it')
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_holder(fd)
            os.close(fd)
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise RobustnessError(f'cannot lock {self.path} ({err}): the file system of the work dir does '
                                      'not support POSIX locks; pass a --work-dir on a local disk') from None
            raise SweepLockedError(
                f'work dir {osp.dirname(self.path)} is in use by another robustness sweep '
                f'({_describe_holder(holder)}), which holds {self.path}: wait for it to finish, or pass another '
                '--work-dir (the lock goes away with that process, however it ends)') from None
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='microseconds')
        record = {'pid': os.getpid(), 'host': socket.gethostname(), 'started_at': started,
                  'command': ' '.join(sys.argv), 'results': self.results_path}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        _HELD_HERE.add(osp.realpath(self.path))
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        _HELD_HERE.discard(osp.realpath(self.path))
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the descriptor releases the record lock
        self._fd = None

    @staticmethod
    def is_held(results_path: str) -> bool:
        """Whether this process holds the lock of ``results_path``."""
        return osp.realpath(lock_path(results_path)) in _HELD_HERE

    def __enter__(self) -> 'SweepLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> Optional[dict]:
    try:
        record = json.loads(os.pread(fd, 1 << 16, 0).decode())
    except (OSError, ValueError):  # empty or half-written: the holder has just taken the lock
        return None
    return record if isinstance(record, dict) else None


def _describe_holder(holder: Optional[dict]) -> str:
    if not holder:
        return 'holder not recorded yet'
    return (f'pid {holder.get("pid")} on host {holder.get("host")}, started {holder.get("started_at")}, '
            f'command: {holder.get("command")}')
