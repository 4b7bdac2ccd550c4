"""Replace a file so that a reader, or a crash, never sees half of it: write a sibling, fsync, rename.

Written here (a dozen lines) because the maintained libraries for it are archived; every writer of state that
must survive a power cut (spool, config, model markers, results) goes through this one function.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`write_atomic`'s temporaries (left behind by a crash)."""
    return name.startswith(".") and name.endswith(".tmp")


def write_atomic(path: Path, data: bytes | str, durable: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename; ``durable`` also fsyncs both."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as fh:
            fh.write(raw)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (indented, newline-terminated) written with :func:`write_atomic`."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")
