"""One StorageService per process: only ``configure_storage`` constructs it.

Everything in ``bot/`` reaches it through ``get_storage_service()`` (or ``context.storage``,
which calls it); ``configure_storage`` itself is called once, by ``build_application``.
Two services on the same files would each append to the journal and diverge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "bot" / "storage" / "service.py"
APP = ROOT / "bot" / "app.py"

Site = tuple[int, str | None]  # (line, enclosing function or None at module level)


def _enclosing_functions(tree: ast.AST) -> dict[ast.AST, str | None]:
    """Map every node to the name of the innermost function that contains it."""
    owner: dict[ast.AST, str | None] = {}

    def visit(node: ast.AST, current: str | None) -> None:
        owner[node] = current
        inner = node.name if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else current
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, None)
    return owner


def calls_of(source: str, target: str, filename: str = "<source>") -> list[Site]:
    """Where ``source`` calls ``target`` — directly, as ``module.target`` or through an alias.

    Aliases are ``from … import target as X`` and plain assignments ``X = target`` /
    ``X = module.target``.
    """
    tree = ast.parse(source, filename)
    names = {target}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.update(a.asname for a in node.names if a.name == target and a.asname)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name | ast.Attribute):
            value = node.value
            if (isinstance(value, ast.Name) and value.id in names) or (
                isinstance(value, ast.Attribute) and value.attr == target
            ):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    owner = _enclosing_functions(tree)
    sites: list[Site] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id in names) or (
            isinstance(func, ast.Attribute) and func.attr == target
        ):
            sites.append((node.lineno, owner[node]))
    return sorted(sites)


def names_used(source: str, name: str) -> list[int]:
    """Lines where ``name`` appears as a name or attribute (for private internals)."""
    tree = ast.parse(source)
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == name)
        or (isinstance(node, ast.Attribute) and node.attr == name)
        or (isinstance(node, ast.alias) and node.name == name and hasattr(node, "lineno"))
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from bot.storage import StorageService\ns = StorageService('d', 'b')\n", [(2, None)]),
        ("import bot.storage.service as st\ns = st.StorageService('d', 'b', 3)\n", [(2, None)]),
        ("from bot.storage import StorageService as S\n\n\nx = S(1, 2)\n", [(4, None)]),
        ("from bot import storage\nk = storage.StorageService\nk(1, 2)\n", [(3, None)]),
        ("def f():\n    return StorageService(1, 2)\n", [(2, "f")]),
        ("class C:\n    async def g(self):\n        def h(): StorageService()\n", [(3, "h")]),
        ("from bot.storage import get_storage_service\ns = get_storage_service()\n", []),
        ("from bot.storage import StorageService\ndef f(s: StorageService): ...\n", []),
        ("x = isinstance(obj, StorageService)\n", []),
    ],
)
def test_detector(source: str, expected: list[Site]) -> None:
    assert calls_of(source, "StorageService") == expected


def _bot_sources() -> list[Path]:
    return sorted(p for p in (ROOT / "bot").rglob("*.py") if "__pycache__" not in p.parts)


def test_only_configure_storage_constructs_storage_service() -> None:
    sites = {
        f"{path.relative_to(ROOT)}:{line} in {function}"
        for path in _bot_sources()
        for line, function in calls_of(path.read_text(encoding="utf-8"), "StorageService")
    }
    allowed = {
        s
        for s in sites
        if s.startswith("bot/storage/service.py:") and s.endswith(" in configure_storage")
    }
    assert len(allowed) == 1, f"configure_storage no longer constructs the service: {sites}"
    assert sites == allowed, (
        "construct nothing directly: use get_storage_service() (or context.storage); "
        f"configure_storage() is called once by build_application: {sorted(sites - allowed)}"
    )


def test_configure_storage_is_called_only_by_build_application() -> None:
    sites = {
        f"{path.relative_to(ROOT)} in {function}"
        for path in _bot_sources()
        for _, function in calls_of(path.read_text(encoding="utf-8"), "configure_storage")
    }
    assert sites == {"bot/app.py in build_application"}


def test_nothing_outside_the_service_touches_the_registry() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _bot_sources()
        if path != SERVICE
        for line in names_used(path.read_text(encoding="utf-8"), "_Registry")
    ]
    assert offenders == []
    assert names_used(SERVICE.read_text(encoding="utf-8"), "_Registry")  # the check can see it


def test_context_storage_is_the_singleton() -> None:
    source = (ROOT / "bot" / "context.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    [prop] = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "storage"
    ]
    assert [(line, fn) for line, fn in calls_of(source, "get_storage_service") if fn == "storage"]
    assert not calls_of(ast.unparse(prop), "StorageService")
