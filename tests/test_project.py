"""What keeps the code readable in an hour: no function longer than a screen, and the module map in
docs/contributing.md true to the imports, which run one way (no circle)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "resdepth"
MAX_LINES = 60


def test_no_function_is_longer_than_a_screen() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(
                        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)"
                    )
    assert not long, long


def module_name(path: Path) -> str:
    """resdepth/diagnose/run.py -> diagnose.run; a package's __init__.py is the package."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The resdepth modules a file imports anywhere in it (type-checking and function-level imports
    included): `from resdepth import results` is resdepth.results, not the notebook API."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in subs if n.removeprefix("resdepth.") in MODULES]
            names += [node.module] if len(names) < len(subs) else []
        else:
            continue
        found |= {
            n.removeprefix("resdepth.") or "" for n in names if n == "resdepth" or n.startswith("resdepth.")
        }
    found.discard(module_name(path))
    return {m for m in found if m in MODULES}


def covers(entry: str, module: str) -> bool:
    """An entry of the map (`models`, `diagnose`, `models.packed`) names the module or its package."""
    return module == entry or module.startswith(entry + ".")


def module_map() -> list[tuple[list[str], set[str]]]:
    """The architecture table: each row's modules (as entries) and the entries they may import."""
    text = (ROOT / "docs" / "contributing.md").read_text()
    table = text[text.index("| module | owns | imports from resdepth |") :].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        cells = line.strip("|").split(" | ")
        paths = re.findall(r"`resdepth/([\w/]*?)(?:\.py|/)?`", cells[0])
        entries = ["" if p == "__init__" else p.replace("/", ".").removesuffix(".__init__") for p in paths]
        rows.append((entries, set(re.findall(r"`([\w.]+)`", cells[-1]))))
    return rows


def row_of(module: str, rows: list[tuple[list[str], set[str]]]) -> tuple[list[str], set[str]]:
    """The row that names the module: by its own file before its package's folder."""
    best = max(
        (
            (len(e), row)
            for row in rows
            for e in row[0]
            if (e == "" and module == "") or (e and covers(e, module))
        ),
        key=lambda found: found[0],
        default=None,
    )
    assert best is not None, (
        f"resdepth/{module.replace('.', '/') or '__init__'} is in no row of the module map"
    )
    return best[1]


def test_the_module_map_in_contributing_names_every_module_and_what_it_imports() -> None:
    rows = module_map()
    wrong = []
    for module, path in sorted(MODULES.items()):
        entries, allowed = row_of(module, rows)
        for imported in sorted(imports(path)):
            mine = any(e and covers(e, imported) for e in entries) or (imported == "" and "" in entries)
            if not mine and not any(covers(a, imported) for a in allowed):
                wrong.append(
                    f"{path.relative_to(ROOT)} imports resdepth.{imported}, not in its row of the map"
                )
    assert not wrong, "\n".join(wrong)


def test_no_import_circle_in_resdepth() -> None:
    graph = {m: imports(p) for m, p in MODULES.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for other in sorted(graph[module]):
            visit(other, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
