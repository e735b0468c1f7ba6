"""The package's imports form no cycle, and no module reaches into another
module's private names. Every import counts, including those inside
functions (a lazy import hides a cycle from Python, not from a reader).

A package's `__init__` counts as a module: importing `tfmask.tasks` runs
every task module it imports. A cycle is what made `masking.strategy` travel
config -> tasks -> config; a private name used from outside is an interface
nobody owns."""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfmask")


def _modules():
    """{dotted module name: path} of every module in the package."""
    modules = {}
    root = os.path.dirname(PACKAGE)
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    return modules


MODULES = _modules()


def _is_package(module):
    return MODULES.get(module, "").endswith("__init__.py")


def _absolute(module, node):
    """The dotted module an ImportFrom names, relative imports resolved."""
    if not node.level:
        return node.module
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module):
    """[(imported module, names imported from it, aliases bound to modules)]."""
    with open(MODULES[module], encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                found.append((alias.name, [], {bound: alias.name} if alias.asname else {}))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:  # `from tfmask.data import sources`
                    found.append((submodule, [], {alias.asname or alias.name: submodule}))
                else:
                    found.append((source, [alias.name], {}))
    return tree, [(name, names, bound) for name, names, bound in found
                  if name == "tfmask" or name.startswith("tfmask.")]


def _graph():
    graph = {}
    for module in MODULES:
        _, imports = _imports(module)
        targets = set()
        for name, _, _ in imports:
            while name not in MODULES and "." in name:  # a name inside a module
                name = name.rsplit(".", 1)[0]
            if name in MODULES and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_walk_sees_imports_inside_functions():
    _, imports = _imports("tfmask.predict")
    assert any(name == "tfmask.tasks" for name, _, _ in imports)  # imported inside __init__


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _private_uses(module):
    tree, imports = _imports(module)
    uses = [f"from {name} import {n}" for name, names, _ in imports for n in names
            if n.startswith("_") and not n.startswith("__")]
    aliases = {alias: target for _, _, bound in imports for alias, target in bound.items()}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            uses.append(f"{aliases[node.value.id]}.{node.attr}")
    return uses


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_uses_another_modules_private_names(module):
    assert not _private_uses(module), f"{module} uses private names: {_private_uses(module)}"
