"""The layering holds: no import circles in inspectd, and the light commands never import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).parents[1]


def test_no_import_cycles():
    graph = grimp.build_graph("inspectd", cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join((module, *back)))
    assert cycles == []


def test_import_contracts_hold():
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["schema"],
        ["schema", "config"],
        ["check-config", "deploy/inspectd.toml"],
        ["models", "--help"],
    ],
)
def test_light_commands_import_no_torch(argv: list[str]):
    code = (
        "import sys\n"
        "from inspectd.cli.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'cv2', 'onnxruntime') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "HEAVY" in proc.stderr, proc.stderr
    assert "'torch'" not in proc.stderr.split("HEAVY")[-1], proc.stderr
