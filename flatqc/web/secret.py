"""The key that signs dashboard sessions (and so their CSRF tokens): the same for every web process of one service.

``FLATQC_WEB_SECRET_KEY`` when set; else ``<run_dir>/web-secret`` (mode 0600), created once by whichever process
comes first and read by all others, so a form stays valid across several web processes and restarts.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

SECRET_FILE = "web-secret"


def web_secret_key(configured: str | None, run_dir: Path) -> str:
    """``configured`` if given, else the content of ``run_dir/web-secret``, created atomically when missing.

    The file is written complete under a temporary name and linked into place (``os.link`` fails if it exists), so
    concurrent first starts agree on one key and nobody reads a half-written file. A key file that other users can
    read or write is refused (PermissionError), as it would let them forge sessions.
    """
    if configured:
        return configured
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / SECRET_FILE
    if not path.exists():
        temporary = run_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process linked its key first: use that one
        finally:
            temporary.unlink(missing_ok=True)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path} is accessible to other users (mode {stat.filemode(mode)}): chmod 600 it")
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"{path} is empty: delete it to have a new key created")
    return key
