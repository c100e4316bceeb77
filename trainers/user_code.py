"""Load a user's function from a reference: ``/abs/path/file.py:function`` or
``package.module:function``.

A file is imported once, under a stable module name of its own
(``batchsweep_user_<stem>_<hash of its path>``), with its folder on ``sys.path`` while it runs so
that it can import the files beside it. Every failure raises :class:`UserCodeError`, whose
message names the reference, the rule that was broken and how to fix it.

Example:
    >>> make_cnn = load_callable("/home/me/exp/models.py:make_cnn")
    >>> shuffle = load_callable("random:shuffle")
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["UserCodeError", "describe_callable", "error_summary", "load_callable"]

_FORM = '"path/to/file.py:function" or "package.module:function"'
_LOCK = threading.Lock()  # two threads loading one file must not both execute it


class UserCodeError(ValueError):
    """A user's function cannot be loaded, or does not do what it must.

    The message names the reference (or function), the rule and how to fix it.
    """


# Functions handed over as Python objects (``sweep.run_sweep(model=fn)`` in a notebook), by the
# reference ``python:<name>`` they are given; they live as long as this process.
IN_PROCESS = "python"
_in_process: dict[str, Callable[..., Any]] = {}


def reference_of(fn: Callable[..., Any]) -> str:
    """A reference that finds ``fn`` again: ``package.module:name`` when its module can be
    imported by that name, else ``python:<name>``, valid in this process only."""
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not callable(fn):
        raise UserCodeError(f"{fn!r} is of type {type(fn).__name__}, not callable.")
    if module and module != "__main__" and name.isidentifier():
        try:
            if getattr(importlib.import_module(module), name, None) is fn:
                return f"{module}:{name}"
        except Exception:  # noqa: BLE001 - not importable by name: kept in this process
            pass
    reference = f"{IN_PROCESS}:{getattr(fn, '__name__', type(fn).__name__)}"
    _in_process[reference] = fn  # a function defined again (a notebook cell rerun) replaces it
    return reference


def load_callable(reference: str) -> Callable[..., Any]:
    """The function (or any callable) a reference names.

    Args:
        reference: ``path/to/file.py:function`` (a relative path is taken from the current
            directory; the sweep makes it absolute first) or ``package.module:function``.

    Returns:
        The callable. Loading the same file twice returns the same object.

    Raises:
        UserCodeError: the reference is malformed, the file or module is missing or raises on
            import, or the name is missing or not callable.

    Example:
        >>> load_callable("math:sqrt")(4.0)
        2.0
    """
    if reference.startswith(f"{IN_PROCESS}:"):
        if reference not in _in_process:
            raise UserCodeError(
                f"{reference}: a function handed to run_sweep() as a Python object exists only "
                "in the process that ran it. Put it in a .py file and name it as "
                f"{_FORM} to use it from here."
            )
        return _in_process[reference]
    target, name = _split(reference)
    if target.endswith(".py"):
        module, where = _import_file(reference, target), f"file {target}"
    else:
        module, where = _import_module(reference, target), f"module {target}"
    if not hasattr(module, name):
        callables = sorted(
            attr
            for attr, value in vars(module).items()
            if callable(value) and not attr.startswith("_")
        )
        close = difflib.get_close_matches(name, callables, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(callables[:12]) + (", ..." if len(callables) > 12 else "")
        raise UserCodeError(
            f"{reference}: {where} has no attribute {name!r}.{hint} The part after ':' must "
            f"name a function defined there; its callables are: {listed or '(none)'}."
        )
    value = getattr(module, name)
    if not callable(value):
        raise UserCodeError(
            f"{reference}: {name!r} in {where} is of type {type(value).__name__}, not callable; the "
            "part after ':' must name a function (or a class) to call."
        )
    return value


def describe_callable(fn: Callable[..., Any]) -> str:
    """``make_cnn (models.py)``: a user's function named for messages, by its source file."""
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    code = getattr(fn, "__code__", None)
    return f"{name} ({Path(code.co_filename).name})" if code is not None else name


def _split(reference: str) -> tuple[str, str]:
    if not isinstance(reference, str) or ":" not in reference:
        raise UserCodeError(
            f"reference {reference!r} has no ':'; a reference is {_FORM}: the file or module, "
            "a colon, then the function."
        )
    # rpartition: a Windows path's drive letter has a colon of its own
    target, _, name = (part.strip() for part in reference.rpartition(":"))
    if not target or not name:
        missing = "file or module" if not target else "function name"
        raise UserCodeError(
            f"reference {reference!r} has an empty {missing}; a reference is {_FORM}."
        )
    return target, name


def _module_name(path: Path) -> str:
    stem = re.sub(r"\W", "_", path.stem)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    return f"batchsweep_user_{stem}_{digest}"


def _import_file(reference: str, target: str) -> ModuleType:
    path = Path(target).expanduser().resolve()
    if not path.is_file():
        raise UserCodeError(
            f"{reference}: file not found: {path}; check the path (a relative path is taken from "
            "the YAML file's folder), or name an importable module as 'package.module:function'."
        )
    name = _module_name(path)
    with _LOCK:
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UserCodeError(
                f"{reference}: {path} cannot be imported as Python source; give a .py file."
            )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before executing it, as import does (dataclasses need it)
        folder = str(path.parent)
        added = folder not in sys.path
        if added:
            sys.path.insert(0, folder)
        try:
            spec.loader.exec_module(module)
        except BaseException as error:
            del sys.modules[name]
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt, SystemExit: the user's to handle
            raise UserCodeError(
                f"{reference}: importing {path} raised {error_summary(error)}; fix that file (run "
                f"`python {path}` to see the traceback)."
            ) from error
        finally:
            if added and folder in sys.path:
                sys.path.remove(folder)
    return module


def _import_module(reference: str, target: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name is not None and (target + ".").startswith(error.name + "."):
            raise UserCodeError(
                f"{reference}: module {target!r} not found ({error_summary(error)}); check its "
                "spelling and that its package is installed, or give a file as "
                "'path/to/file.py:function'."
            ) from error
        raise _import_raised(reference, target, error) from error
    except Exception as error:
        raise _import_raised(reference, target, error) from error


def _import_raised(reference: str, target: str, error: Exception) -> UserCodeError:
    return UserCodeError(
        f"{reference}: importing module {target!r} raised {error_summary(error)}; fix the module or "
        "what it imports."
    )


def error_summary(error: BaseException) -> str:
    """``TypeError: message``: an exception's type and the first line of its message, for an
    error message that names the user's own error without its traceback."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
