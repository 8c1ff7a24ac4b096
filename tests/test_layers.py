"""The package's folders are layers: lower layers never import higher ones, and no module cycles.

The README's Architecture section describes these rules; this test keeps them true.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tenancy"

# What each layer may import from tenancy (besides itself). "top" is the package's own
# top-level modules: errors, settings, models, instance_ids, log_context, lru.
ALLOWED: dict[str, set[str]] = {
    "top": set(),
    "emulator": set(),
    # The request flow, bottom up: the database's enforcement, the tenants table, the ORM session.
    "postgres": {"top"},
    "tenants": {"top", "postgres"},
    "orm": {"top", "postgres", "tenants"},
    "wix": {"top"},
    # The sync flow: Wix's answers into the tenants table.
    "tenant_sync": {"top", "tenants", "wix"},
    # A tenant's life after install (purge, export, copy): admin side, over the catalog.
    "lifecycle": {"top", "postgres", "tenants"},
    "migrations": {"top", "postgres", "tenants"},
    "testing": {"top", "postgres", "tenants", "orm"},
    "commands": {
        "top",
        "postgres",
        "tenants",
        "orm",
        "wix",
        "tenant_sync",
        "lifecycle",
        "migrations",
        "emulator",
        "testing",
        "api",
    },
    "api": {"top", "postgres", "tenants", "orm", "wix", "tenant_sync"},
    # Web framework adapters: above everything the request and webhook flows use.
    "integrations": {"top", "postgres", "tenants", "orm", "wix", "tenant_sync"},
}
TOP_MODULES = {"errors", "settings", "instance_ids", "log_context", "lru", "models"}
API_MODULES = {"__init__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "api"
    if parts[1:] == ["__main__"]:
        return "commands"  # python -m tenancy is the command line
    if len(parts) == 2 and parts[1] in API_MODULES:
        return "api"
    if len(parts) == 2 and parts[1] in TOP_MODULES:
        return "top"
    return parts[1]


def _runtime_imports(path: Path) -> set[str]:
    """tenancy modules imported at run time (imports under ``if TYPE_CHECKING:`` are left out)."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("tenancy"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                if base.startswith("tenancy"):
                    for alias in child.names:
                        candidate = f"{base}.{alias.name}"
                        is_module = (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists() or (
                            PACKAGE.parent / candidate.replace(".", "/")
                        ).is_dir()
                        found.add(candidate if is_module else base)
            visit(child)

    visit(tree)
    return found


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_and_the_ones_below(module: str) -> None:
    layer = _layer(module)
    allowed = ALLOWED[layer] | {layer}
    for imported in _runtime_imports(MODULES[module]):
        if imported == "tenancy":
            assert layer in {"commands", "api"}, f"{module} imports the package root"
            continue
        target = _layer(imported)
        assert target in allowed, f"{module} ({layer}) imports {imported} ({target})"


def test_no_import_cycles_between_modules() -> None:
    graph = {name: {i for i in _runtime_imports(path) if i in MODULES} for name, path in MODULES.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def walk(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(node) :], node])
        visiting.append(node)
        for nxt in graph[node]:
            # A package imports its own modules to re-export them: not a cycle of concerns.
            if nxt.startswith(node + "."):
                continue
            walk(nxt)
        visiting.pop()
        done.add(node)

    for name in graph:
        walk(name)


def test_the_layer_rules_see_every_folder() -> None:
    """A new folder needs a rule here (and a line in the README's Architecture section)."""
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(ALLOWED)
