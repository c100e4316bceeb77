"""One rule for study names (``search_spaces.spec.STUDY_NAME_PATTERN``), applied to ``--study`` in
every command and to ``run_sweep(study=...)``, as it is to a space's ``name``. A study's name
names a folder of reports, so ``../x``, ``/abs/path`` or 5,000 characters never reach the disk."""

from __future__ import annotations

from search_spaces.spec import STUDY_NAME_PATTERN, STUDY_NAME_RULE, is_study_name
from sweep.errors import UsageError

SHOWN_CHARACTERS = 200  # of a refused name echoed in the message


def check_study_name(name: str | None, *, flag: str = "--study") -> None:
    """Raise a UsageError naming ``flag`` unless ``name`` is None or a valid study name.

    Example:
        >>> check_study_name("../escape")
        Traceback (most recent call last):
        ...
        sweep.errors.UsageError: --study '../escape' is not a study name: ...
    """
    if name is None or is_study_name(name):
        return
    shown = repr(name[: SHOWN_CHARACTERS + 1]) if isinstance(name, str) else repr(name)
    if isinstance(name, str) and len(name) > SHOWN_CHARACTERS:
        shown = f"{shown[:SHOWN_CHARACTERS]}... ({len(name):,} characters)"
    raise UsageError(
        f"{flag} {shown} is not a study name: it must match {STUDY_NAME_PATTERN} "
        f"({STUDY_NAME_RULE}). A study's name names its report folder, so it holds no path. "
        "Choose a name such as my_study_2."
    )
