"""The package's shape, checked: each stage imports only the stages before it, only
gui/ imports Qt, nothing the kiosk runs imports training, evaluation or the CLI, no
two modules import each other (within a stage too), and no module (nor a script in
scripts/) imports another's private name (docs/architecture.md). Every import counts,
deferred and type-only ones too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "accessctl"
FOUNDATION = {"config", "errors", "textenum", "clock", "workers", "torchscript", "thresholds"}
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


SCRIPTS = PACKAGE.parent / "scripts"


def _modules(with_scripts: bool = False) -> list[tuple[str, Path]]:
    found = [
        (".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"), p)
        for p in sorted(PACKAGE.rglob("*.py"))
    ]
    if with_scripts:
        found += [(f"scripts.{p.stem}", p) for p in sorted(SCRIPTS.glob("*.py"))]
    return found


def imports(with_scripts: bool = False, names: bool = False) -> list[tuple[str, str]]:
    """(importing module, imported module) for every import in the package; with
    ``names``, each name taken by ``from M import name`` as ``M.name``."""
    out = []
    for module, path in _modules(with_scripts):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                taken = names or node.module == "accessctl"
                out += [(module, f"{node.module}.{a.name}" if taken else node.module) for a in node.names]
            elif isinstance(node, ast.Import):
                out += [(module, a.name) for a in node.names]
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name imported from a module is that module)."""
    known = {m for m, _ in _modules()}
    graph: dict[str, set[str]] = {m: set() for m in known}
    for src, dst in imports(names=True):
        while dst and dst not in known:  # "from M import name": M, or M.name where that is a module
            dst = dst.rpartition(".")[0]
        if dst and dst != src:
            graph[src].add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (strongly connected groups of two or more modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


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
    qt = [f"{s} imports {d}" for s, d in imports() if d.split(".")[0] == "PyQt6" and not s.startswith("accessctl.gui.")]
    assert not qt, "Qt outside gui/:\n" + "\n".join(qt)
    tools = [
        f"{s} imports {d}"
        for s, d in imports()
        if d.startswith("accessctl") and layer(d) in TOOLS and layer(s) not in TOOLS
    ]
    assert not tools, "inference importing training, evaluation or the CLI:\n" + "\n".join(tools)


def test_the_checker_sees_a_back_arrow() -> None:
    """The rule can fail: a vision module importing the door would be caught."""
    assert "door" not in BEFORE["vision"] and layer("accessctl.door.pipeline") == "door"
    assert layer("accessctl.config") == "foundation" and layer("accessctl.cli.people") == "cli"


def test_no_import_cycles_anywhere() -> None:
    found = cycles(import_graph())
    assert not found, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_module_or_script_takes_another_modules_private_name() -> None:
    private = [
        f"{s} imports {d}"
        for s, d in imports(with_scripts=True, names=True)
        if d.startswith("accessctl.")
        and (name := d.rpartition(".")[2]).startswith("_")
        and not name.startswith("__")
        and not d.startswith(s + ".")
    ]
    assert not private, "private names taken across modules:\n" + "\n".join(private)


def test_the_cycle_check_can_fail() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_a_door_is_put_together_in_one_place() -> None:
    """The headless command, the demo and the kiosk window open their door through
    door/assembly.py: no other module of the package builds a door's Runner, and the
    three callers use it."""
    built = [
        module
        for module, path in _modules()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Runner"
    ]
    assert built == ["accessctl.door.assembly"], built
    users = {s for s, d in imports(names=True) if d.startswith("accessctl.door.assembly.")}
    assert {"accessctl.cli.kiosk", "accessctl.kiosk.session", "accessctl.gui.app"} <= users, users
