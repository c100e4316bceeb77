"""Storage and tracking URLs as they may be shown or stored: without their passwords.

A URL that reaches the terminal, a log, an MLflow tag or param, an Optuna attribute or a file goes
through :func:`redact_url` (one URL) or :func:`redact_text` (any text that may hold URLs). The real
URL stays in memory and in the environment of the processes that need it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"  # what SQLAlchemy's render_as_string(hide_password=True) writes
# scheme://user:password@ : the password is everything up to the last "@" before the host.
_USERINFO = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"]*:)(?P<secret>[^\s/'\"]*)@"
)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``; a URL without one is returned as it is.

    Database URLs go through SQLAlchemy (as ``make_url(url).render_as_string(hide_password=True)``),
    http(s) and any other URL through :func:`redact_text`.

    Example:
        >>> redact_url("postgresql://sweep:s3cret@db:5432/optuna")
        'postgresql://sweep:***@db:5432/optuna'
    """
    if not url.startswith(("http://", "https://")):
        # SQLAlchemy: loaded only for a URL, so `sweep --help` stays light
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            return redact_text(url)
        if parsed.password is None:
            return url
        return parsed.render_as_string(hide_password=True)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))


def redact_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it replaced by ``***``.

    Example:
        >>> redact_text("storage postgresql://u:pw@h/db, tracking http://a:b@h:5000")
        'storage postgresql://u:***@h/db, tracking http://a:***@h:5000'
    """
    return _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
