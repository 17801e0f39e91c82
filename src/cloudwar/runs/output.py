"""Atomic output: one rule for ``cloudwar run``, sweeps, sensitivity and the experiment scripts.

* :func:`check_out_folder`: refuse, before any work, an output folder that cannot be made;
* :func:`output_folder`: write into a temporary folder beside ``out`` (``.NAME.tmp-PID-XXXX``), then
  move its files in, so ``out`` holds either none of the new files or all of them; files of ``out``
  that the run does not write are never touched; the temporary folders of processes that died
  (``kill -9``) are removed by the next run that writes beside them;
* :func:`replace_file`: write one file under a hidden temporary name, fsync, rename into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from cloudwar.errors import SweepError


def check_out_folder(out: str | Path, param: str = "out") -> Path:
    """Refuse, before any work, an output folder that cannot be made (one-line :class:`SweepError`).

    ``out`` must be a folder or not exist yet, and its nearest existing ancestor a folder this
    process may write in. Returns the absolute path. ``param`` names the argument in the message.
    """
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise SweepError(f"{param} {out} exists and is not a folder", param=param)
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SweepError(f"{param} {out}: {ancestor} is a file, not a folder", param=param)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise SweepError(f"{param} {out}: cannot write in {ancestor}", param=param)
    return out


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs: it exists and (on Linux) is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # the pid now belongs to another user's process: ours is gone
            return False
        return True


def _temporary_prefix(out: Path) -> str:
    return f".{out.name}.tmp-"


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove the temporary folders beside ``out`` left by processes that no longer run; the removed."""
    removed = []
    prefix = _temporary_prefix(out)
    with contextlib.suppress(OSError):
        for item in out.parent.glob(f"{prefix}*"):
            pid_text = item.name[len(prefix) :].split("-", 1)[0]
            if item.is_dir() and pid_text.isdigit() and not pid_alive(int(pid_text)):
                shutil.rmtree(item, ignore_errors=True)
                removed.append(item)
    return removed


@contextlib.contextmanager
def output_folder(out: str | Path, param: str = "out") -> Iterator[Path]:
    """A temporary folder beside ``out`` to write into; its files move into ``out`` only if the block succeeds.

    Nothing is moved until every target is known to be free (no folder in the way of a file);
    each move is an atomic rename, and a folder written replaces the folder of that name.
    """
    out = check_out_folder(out, param)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SweepError(f"{param} {out}: cannot create {out.parent}: {err.strerror}", param=param) from None
    remove_stale_temporaries(out)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f"{_temporary_prefix(out)}{os.getpid()}-", dir=out.parent))
    except OSError as err:
        raise SweepError(f"{param} {out}: cannot write in {out.parent}: {err.strerror}", param=param) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700; the output should look like any folder
        yield tmp
        items = sorted(tmp.iterdir())
        blocked = [out / item.name for item in items if (out / item.name).is_dir() and not item.is_dir()]
        if blocked:
            raise SweepError(
                f"{param} {out}: a folder named {blocked[0].name} is in the way of the output file", param=param
            )
        out.mkdir(exist_ok=True)
        for item in items:
            target = out / item.name
            if item.is_dir() and target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_atomically(out: str | Path, write: Callable[[Path], None], param: str = "out") -> None:
    """Run ``write(tmpdir)`` and move every file it made into ``out`` (see :func:`output_folder`)."""
    with output_folder(out, param) as tmp:
        write(tmp)


def replace_file(path: Path, write: Callable[[Path], None]) -> None:
    """Write one file atomically: ``write(tmp)`` to ``.NAME.PID.tmp`` beside it, fsync, rename over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
