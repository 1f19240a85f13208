"""The package's shape, checked: each stage imports only the stages before it, only
gui/ imports Qt, and nothing the kiosk runs imports training, evaluation or the CLI
(docs/architecture.md). Every import counts, deferred and type-only ones too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "accessctl"
FOUNDATION = {"config", "errors", "labels", "clock", "workers", "tracing", "thresholds"}
BEFORE: dict[str, set[str]] = {
    "foundation": set(),
    "frames": {"foundation"},
    "vision": {"foundation", "frames"},
    "storage": {"foundation"},
    "liveness": {"foundation", "frames", "vision"},
    "identity": {"foundation", "frames", "vision", "storage"},
    "door": {"foundation", "frames", "vision", "storage", "liveness", "identity"},
    "kiosk": {"foundation", "frames", "vision", "storage", "liveness", "identity", "door"},
    "gui": {"foundation", "frames", "vision", "storage", "liveness", "identity", "door", "kiosk"},
    "api": {"foundation", "frames", "vision", "storage", "identity"},
}
TOOLS = {"evaluation", "training", "cli", "__main__"}  # on top: they may use any stage
# A tool that lives in gui/ because it drives Qt: `bench --kiosk` times the real window.
TOOL_MODULES = {"accessctl.gui.bench"}


def layer(module: str) -> str:
    if module in TOOL_MODULES:
        return "evaluation"
    parts = module.split(".")
    if len(parts) == 1 or module == "accessctl.__version__":
        return "foundation"  # accessctl itself, and its version
    return "foundation" if parts[1] in FOUNDATION else parts[1]


def imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every import in the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "accessctl" else [node.module]
                out += [(module, n) for n in names]
            elif isinstance(node, ast.Import):
                out += [(module, a.name) for a in node.names]
    return out


def test_every_stage_imports_only_the_stages_before_it() -> None:
    wrong = []
    for src, dst in imports():
        if not dst.startswith("accessctl"):
            continue
        a, b = layer(src), layer(dst)
        if a == b or a in TOOLS:
            continue
        if b not in BEFORE.get(a, set()):
            wrong.append(f"{src} imports {dst} ({a} -> {b})")
    assert not wrong, "imports that run back up the layers:\n" + "\n".join(wrong)


def test_only_gui_imports_qt_and_inference_never_imports_tools() -> None:
    qt = [f"{s} imports {d}" for s, d in imports()
          if d.split(".")[0] == "PyQt6" and not s.startswith("accessctl.gui.")]
    assert not qt, "Qt outside gui/:\n" + "\n".join(qt)
    tools = [f"{s} imports {d}" for s, d in imports()
             if d.startswith("accessctl") and layer(d) in TOOLS and layer(s) not in TOOLS]
    assert not tools, "inference importing training, evaluation or the CLI:\n" + "\n".join(tools)


def test_the_checker_sees_a_back_arrow() -> None:
    """The rule can fail: a vision module importing the door would be caught."""
    assert "door" not in BEFORE["vision"] and layer("accessctl.door.pipeline") == "door"
    assert layer("accessctl.config") == "foundation" and layer("accessctl.cli.people") == "cli"
