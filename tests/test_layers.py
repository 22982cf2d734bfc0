"""The import rules of DESIGN.md, checked on the source: model files import only torch and the
spatial core; config imports no training code; listing presets and --help need no torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "posgen"
STDLIB = set(sys.stdlib_module_names)


def imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; at any depth, lazy imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_model_files_import_only_torch_and_the_spatial_core():
    # posgen.diffusion: the DDPM process (pure torch, imports only the spatial core) that models/unet.py samples with
    allowed = ("torch", "posgen.ops", "posgen.encodings", "posgen.grid", "posgen.models", "posgen.errors",
               "posgen.diffusion")
    for path in sorted((SRC / "models").glob("*.py")):
        bad = {m for m in imports(path) if m.split(".")[0] not in STDLIB and not m.startswith(allowed)}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_config_imports_no_family_no_trainer_and_errors_import_nothing():
    assert not {m for m in imports(SRC / "config.py") if m.startswith(("posgen.training", "posgen.models",
                                                                         "posgen.families", "torch"))}
    assert {m for m in imports(SRC / "errors.py")} <= {"__future__"}


def test_the_spatial_core_does_not_import_upwards():
    for sub in ("ops", "encodings", "diffusion"):
        for path in (SRC / sub).glob("*.py"):
            bad = {m for m in imports(path) if m.startswith("posgen.") and not m.startswith(
                ("posgen.ops", "posgen.encodings", "posgen.grid", "posgen.errors", f"posgen.{sub}"))}
            assert not bad, f"{sub}/{path.name} imports {sorted(bad)}"


def test_presets_and_help_start_without_torch():
    code = ("import sys, io, contextlib\nfrom posgen.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    rc = main(['presets'])\n"
            "assert rc == 0\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    out = subprocess.run([sys.executable, "-m", "posgen.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout
