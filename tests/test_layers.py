"""The house's layers, read from the import statements of every module (those inside functions
and `if TYPE_CHECKING:` blocks too): no import cycle, no import from a lower layer to a higher
one, and no library module that prints or imports click.

    python tests/test_layers.py   # prints the package graph
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "convtrain"

# Bottom to top; a module may import its own layer's modules and the layers below.
LAYERS = (
    (
        "base",
        ("errors", "io", "safeload", "tfquiet", "progress", "records", "history", "rundir", "html"),
    ),
    ("layers", ("layers",)),  # one module per layer kind: its spec, arithmetic and builder
    ("config", ("config",)),
    ("data", ("data",)),
    ("model", ("model",)),
    ("plots", ("plots",)),
    ("train", ("train",)),
    ("explain", ("explain",)),  # Grad-CAM, feature maps, fields: drawn by evaluate and explain
    ("evaluate", ("evaluate",)),
    ("experiments", ("experiments",)),
    ("search", ("search",)),  # the sweep engine on Optuna: studies of ordinary runs
    ("commands", ("commands", "cli", "__main__")),
)
# Library modules that still print or import click: none (a new one fails the test below).
KNOWN_PRINTERS: set[str] = set()
# Programs of their own (python -m ...): the watchdog process writes to the stream it is given,
# the layer docs generator prints the tables it writes into docs/config.md.
OWN_PROCESS = {"convtrain.train.watchdog", "convtrain.layers.docs"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    if module == "convtrain":
        return 0  # the package's __init__: its version
    head = module.split(".")[1]
    for index, (_, members) in enumerate(LAYERS):
        if head in members:
            return index
    raise AssertionError(f"{module}: in no layer of LAYERS")


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or path.is_dir()


def imports(path: Path) -> set[str]:
    """The convtrain modules `path` imports, wherever the statement is."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("convtrain")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("convtrain"):
            for alias in node.names:  # `from convtrain.train import checkpoints` is a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _is_module(sub) else node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules_or_packages() -> None:
    edges = graph()
    assert cycles(edges) == []
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in edges.items():
        packages[package(module)] |= {package(t) for t in targets} - {package(module)}
    assert cycles(packages) == []


def test_no_import_from_a_lower_layer_to_a_higher_one() -> None:
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def _prints(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            if "click" in names:
                return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
        ):
            return True
        if isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr"):
            if isinstance(node.value, ast.Name) and node.value.id == "sys":
                return True
    return False


def test_library_packages_never_print_nor_import_click() -> None:
    commands = {m for _, members in LAYERS[-1:] for m in members}
    printers = {
        module_name(p)
        for p in PACKAGE.rglob("*.py")
        if layer_of(module_name(p)) < len(LAYERS) - 1 and _prints(p)
    }
    assert commands  # the commands layer is the one allowed to
    # tfquiet flushes stderr before hiding TensorFlow's start-up chatter: it writes nothing.
    assert printers - KNOWN_PRINTERS - OWN_PROCESS - {"convtrain.tfquiet"} == set()


if __name__ == "__main__":
    edges = graph()
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in edges.items():
        packages[package(module)] |= {package(t) for t in targets} - {package(module)}
    for name in sorted(packages, key=lambda p: (layer_of(p), p)):
        print(f"{name:<24} -> {', '.join(sorted(packages[name])) or '-'}")
    print(f"module cycles: {cycles(edges)}; package cycles: {cycles(dict(packages))}")
    sys.exit(0)
