"""The dependency rule, read from the code's imports (docs/ARCHITECTURE.md):

cli -> run, analysis, errors;  integrations -> run, analysis, errors;
run -> analysis, errors, sources;  analysis -> errors, sources;  errors -> sources;
sources and fake_openai import nothing of ours but themselves; nothing imports cli;
only the demo and sandbox commands import fake_openai; and no import circle anywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sources", "pipelines", "fake_openai")

# room -> the rooms it may import (besides itself)
ALLOWED: Dict[str, Set[str]] = {
    "sources": set(),
    "fake_openai": set(),
    "pipelines.errors": {"sources"},
    "pipelines.analysis": {"pipelines.errors", "sources"},
    "pipelines.run": {"pipelines.analysis", "pipelines.errors", "sources"},
    "pipelines.integrations": {
        "pipelines.run",
        "pipelines.analysis",
        "pipelines.errors",
        "sources",
    },
    "pipelines.cli": {"pipelines.run", "pipelines.analysis", "pipelines.errors", "sources"},
    "pipelines.script": {"pipelines.run"},
}
FAKE_OPENAI_USERS = {"pipelines.cli.demo", "pipelines.cli.sandbox"}


def _modules() -> Dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _target(name: str) -> str:
    """The most specific module of ours that an imported name lives in ('' for others)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return ""


def imports(module: str) -> Iterator[str]:
    """The modules of ours that `module` imports (also under TYPE_CHECKING, also inside
    functions: an import is a dependency wherever it sits)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _target(name)
            if target and target != module:
                yield target


def room(module: str) -> str:
    if module == "pipelines.openai_fine_tuning_pipeline":
        return "pipelines.script"
    parts = module.split(".")
    if parts[0] != "pipelines":
        return parts[0]
    return ".".join(parts[:2]) if len(parts) > 1 else "pipelines"


def test_every_room_imports_only_what_the_rule_allows():
    breaches: List[Tuple[str, str]] = []
    for module in MODULES:
        here = room(module)
        allowed = ALLOWED.get(here, set()) | {here}
        for target in imports(module):
            there = room(target)
            if there == "fake_openai" and module in FAKE_OPENAI_USERS:
                continue
            if there not in allowed:
                breaches.append((module, target))
    assert breaches == []


def test_the_rule_covers_every_room():
    assert {room(module) for module in MODULES} - {"pipelines"} == set(ALLOWED)


def test_no_import_circle_anywhere():
    graph = {module: set(imports(module)) for module in MODULES}
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    circles: List[List[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert circles == []


def test_the_check_sees_a_breach():
    """The reader is not blind: it finds imports that exist."""
    assert "pipelines.run" in set(imports("pipelines.cli.demo"))
    assert "fake_openai" in {room(t) for t in imports("pipelines.cli.sandbox")}
    relative = set(imports("sources.openai_fine_tuning.http.throttle"))  # `from . import stopping`
    assert "sources.openai_fine_tuning.http.stopping" in relative
