"""Only bot/services/storage.py may construct StorageService; the rest uses the singleton."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = (ROOT / "bot" / "services" / "storage.py").resolve()


def direct_constructions(source: str, filename: str = "<source>") -> list[int]:
    """Return the line numbers where ``source`` constructs StorageService directly.

    Catches ``StorageService(...)``, ``module.StorageService(...)``, aliases from
    ``from ... import StorageService as X`` and the private ``StorageService._from_core``.
    """
    tree = ast.parse(source, filename)
    names = {"StorageService"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.update(a.asname for a in node.names if a.name == "StorageService" and a.asname)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Name | ast.Attribute):
            value = node.value
            if (isinstance(value, ast.Name) and value.id in names) or (
                isinstance(value, ast.Attribute) and value.attr == "StorageService"
            ):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    lines: list[int] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in names:
            lines.append(node.lineno)
        elif isinstance(func, ast.Attribute):
            owner = func.value
            if func.attr == "StorageService" or (
                func.attr == "_from_core"
                and (
                    (isinstance(owner, ast.Name) and owner.id in names)
                    or (isinstance(owner, ast.Attribute) and owner.attr == "StorageService")
                )
            ):
                lines.append(node.lineno)
    return sorted(lines)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from bot.services.storage import StorageService\ns = StorageService('d', 'b')\n", [2]),
        ("import bot.services.storage as st\ns = st.StorageService('d', 'b', 3)\n", [2]),
        ("from bot.services.storage import StorageService as S\n\n\nx = S(1, 2)\n", [4]),
        ("from bot.services import storage\nk = storage.StorageService\nk(1, 2)\n", [3]),
        ("from bot.services.storage import StorageService\nStorageService._from_core(c)\n", [2]),
        ("from bot.services.storage import get_storage_service\ns = get_storage_service()\n", []),
        ("from bot.services.storage import StorageService\ndef f(s: StorageService): ...\n", []),
        ("x = isinstance(obj, StorageService)\n", []),
    ],
)
def test_detector(source: str, expected: list[int]) -> None:
    assert direct_constructions(source) == expected


def test_nothing_in_bot_constructs_storage_service_directly() -> None:
    sources = sorted((ROOT / "bot").rglob("*.py"))
    assert ALLOWED in {p.resolve() for p in sources}
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources
        if path.resolve() != ALLOWED
        for line in direct_constructions(path.read_text(encoding="utf-8"), str(path))
    ]
    assert offenders == [], (
        "construct nothing directly: use get_storage_service() (configure_storage() is called "
        f"once by build_application): {offenders}"
    )
