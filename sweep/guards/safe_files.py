"""Files written for the user (a report's folder, ``sweep best -o``) without following a symlink:
a link planted where a report file goes cannot make the sweep overwrite the file it points to.
A file is written into the folder it belongs to, by name, through the folder's descriptor."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from sweep.errors import UsageError

_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # every POSIX system; Windows has no such links
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NO_FOLLOW | getattr(os, "O_CLOEXEC", 0)


def write_into(folder: Path, name: str, data: bytes | str) -> Path:
    """Write ``data`` to the file ``name`` in ``folder`` (made if missing), refusing a symlink
    in place of the file or of the folder itself; returns the file's path.

    Raises:
        UsageError: the file or the folder is a symlink, or the file is a directory.
    """
    if name in ("", ".", "..") or os.sep in name or (os.altsep and os.altsep in name):
        raise ValueError(f"{name!r} is not a file name")  # a bug: names are the report's own
    if isinstance(data, str):
        data = data.encode()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    try:
        folder_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NO_FOLLOW)
    except OSError as err:
        raise UsageError(_refusal(folder, err, "folder")) from err
    try:
        fd = os.open(name, _WRITE_FLAGS, 0o666, dir_fd=folder_fd)
    except OSError as err:
        raise UsageError(_refusal(target, err, "file")) from err
    finally:
        os.close(folder_fd)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return target


def copy_into(source: Path, folder: Path, name: str) -> Path:
    """Copy the file ``source`` to ``name`` in ``folder``, as :func:`write_into` writes."""
    return write_into(folder, name, source.read_bytes())


def check_output_file(path: Path, *, flag: str) -> None:
    """Refuse, naming ``flag``, an output path that is a directory or a symlink."""
    if path.is_symlink():
        raise UsageError(
            f"{flag} {path}: is a symlink; the file is not written through it. Give the path of "
            "the file itself."
        )
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory. Give a file name, e.g. {path}/best.json.")


def write_atomically(path: Path, text: str | bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: never a half-written file. An
    existing file keeps its permissions; a new one gets the umask's, as ``open()`` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb" if isinstance(text, bytes) else "w") as tmp:
            tmp.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _refusal(path: Path, err: OSError, what: str) -> str:
    if path.is_symlink():
        return (
            f"{path}: is a symlink; the report's {what} is not written through it. Remove the "
            "link, or choose another folder with -o."
        )
    return f"{path}: cannot be written ({err.strerror}). Choose another folder with -o."
