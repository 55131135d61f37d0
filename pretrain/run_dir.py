"""One run per output folder, and files that are never seen half-written.

Every training tool (pretraining, detection, segmentation) claims its output folder with
``claim_run_dir`` before it writes anything there:

- a folder that holds another run is refused, unless the user resumes that run (or evaluates into it)
  or asks to overwrite it, which clears the old run's files first;
- a folder another process is writing to right now is refused: the claim holds an exclusive
  ``fcntl.flock`` on ``<folder>/.run.lock``, which the operating system releases when the holder
  exits, also when it is killed, so a crashed run never leaves the folder stuck.

The lock file also marks the folder as a run folder of this project: ``overwrite`` only clears
folders that carry it, never an unrelated folder passed by mistake.

``atomic_write`` writes a file through a temporary file in the same folder, fsync and ``os.replace``:
a reader sees the old file or the complete new one, even when the writer is killed mid-write.

Pure Python (no torch), so every layer and both frameworks' glue can use it.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
from typing import BinaryIO, Callable

LOCK_NAME = ".run.lock"
_HELD: dict[str, "RunDir"] = {}  # real path -> this process's claim (a claim is re-entrant per process)


class RunDirError(RuntimeError):
    """An output folder that cannot be used as asked; the message says why and what to do."""


class RunDir:
    """A claimed output folder; ``release()`` (or leaving the ``with`` block) gives it back. Claims
    of the same folder in one process nest: the lock goes when the outermost claim is released."""

    def __init__(self, path: str, fd: int):
        self.path, self._fd, self._depth = path, fd, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd >= 0:
            _HELD.pop(os.path.realpath(self.path), None)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def is_main_process() -> bool:
    """Rank 0 (or no launcher), from the variables torchrun, Slurm and Open MPI set before any process
    group exists: only the main process claims a folder that all ranks share."""
    for var in ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK"):
        if var in os.environ:
            return os.environ[var] == "0"
    return True


def run_files(path: str) -> list[str]:
    """The entries of ``path`` that belong to a run (everything but the lock file), sorted."""
    if not os.path.isdir(path):
        return []
    return sorted(name for name in os.listdir(path) if name != LOCK_NAME)


def _lock(path: str, option: str) -> int:
    fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise RunDirError(
            f"{option} {path} is in use by another run right now (process {holder} holds "
            f"{os.path.join(path, LOCK_NAME)}). Wait for it to finish, stop it, or pass another {option}."
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _clear(path: str, names: list[str]) -> None:
    for name in names:
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.remove(full)


def claim_run_dir(path: str, resume: bool = False, overwrite: bool = False, option: str = "--output",
                  resume_flag: str = "--resume") -> RunDir:
    """Create ``path`` if needed, lock it against other processes and check it may be used.

    ``resume``: the folder may hold a run (to continue it, or to evaluate into it). ``overwrite``: a
    previous run's files are deleted first. Neither: the folder must be new or empty. ``option`` and
    ``resume_flag`` name the tool's flags in the messages. Raises RunDirError."""
    if resume and overwrite:
        raise RunDirError(f"{resume_flag} continues the run in {path} and --overwrite deletes it: pass one of them")
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunDirError(f"{option} {path} is a file, not a folder: pass a folder for the run's outputs")
    key = os.path.realpath(path)
    if key in _HELD:  # this process holds it already (e.g. training, then evaluation into the same folder)
        _HELD[key]._depth += 1
        held, marked = _HELD[key], True
    else:
        os.makedirs(path, exist_ok=True)
        marked = os.path.isfile(os.path.join(path, LOCK_NAME))
        held = _HELD[key] = RunDir(path, _lock(path, option))
    try:
        _check_files(path, resume, overwrite, option, resume_flag, marked)
    except BaseException:
        if not marked:  # leave no marker in a folder that is not ours (it would admit --overwrite)
            os.remove(os.path.join(path, LOCK_NAME))
        held.release()
        raise
    return held


def _check_files(path: str, resume: bool, overwrite: bool, option: str, resume_flag: str, marked: bool) -> None:
    files = run_files(path)
    if not files or resume:
        return
    shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    if overwrite and marked:
        _clear(path, files)
        return
    if overwrite:
        raise RunDirError(
            f"--overwrite refused: {option} {path} holds files ({shown}) but no {LOCK_NAME}, so it is not a run "
            f"folder written by this project's tools (or by an older version of them). Delete it yourself or pass "
            f"another {option}."
        )
    raise RunDirError(
        f"{option} {path} already holds a run ({shown}). Pass {resume_flag} to continue it, --overwrite to delete "
        f"it and start again, or another {option}."
    )


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """``write(f)`` into a temporary file beside ``path``, fsync, then ``os.replace`` onto ``path``: a
    reader never sees a partial file, even when the writer is killed. The temporary file of a killed
    writer stays behind as ``.<name>.tmp.<pid>`` (never under the final name)."""
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str, text: str) -> None:
    """``atomic_write`` of a UTF-8 text file (e.g. detectron2's and mmengine's ``last_checkpoint``)."""
    atomic_write(path, lambda f: f.write(text.encode()))
