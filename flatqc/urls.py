"""Service URLs with passwords: joining a password given apart to a URL, and hiding passwords in anything shown.

Every line that may hold a database or Redis URL (start-up lines, logs, ``flatqc status``, pages, ``/healthz``) goes
through :func:`masked`; :func:`one_line <flatqc.logs.one_line>` does it for every error it formats.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

MASK = "***"

_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)\S*@")
"""``scheme://user:`` then the password up to the last ``@`` of the word (so an unencoded ``@ : / #`` in it is
covered too)."""


def masked(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` in it replaced by ``***``."""
    return _CREDENTIALS.sub(lambda match: f"{match['head']}{MASK}@", text)


def with_password(url: str, password: str) -> str:
    """``url`` (SQLAlchemy or Redis) with ``password`` percent-encoded into it, replacing any password it held, so
    that any character works: SQLAlchemy and redis-py decode it again."""
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))
