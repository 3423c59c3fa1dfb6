"""The dependency direction of STYLE.md, read from the package source with `ast`: `core` imports nothing of
`data`, `methods`, `conv`, `recurrent`, `bench` or `experiments`; `data` (the plumbing of datasets) and `methods`
(the method units) import only `core`; the two sides import only `core`, `data`, `methods` and themselves; `bench`
(what times the code) and `experiments` (protocols over many runs) import those, not each other; nothing imports
the command line; no module imports another that imports it back; the plain network borrows nothing from the
fast code it is the ground truth of; genotypes and configs load without torch."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dartsnas

PACKAGE = Path(dartsnas.__file__).parent
# Every module as a dotted name below the package: "cli", "core.genotype", "conv.supernet", ...
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"
)

# Which folders a folder's modules may import from (besides their own).
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "methods": {"core"},  # the method units: the seam's implementations, below the spaces that use them
    "conv": {"core", "data", "methods"},
    "recurrent": {"core", "data", "methods"},
    "bench": {"core", "data", "methods", "conv", "recurrent"},  # what times and measures the code
    "experiments": {"core", "data", "methods", "conv", "recurrent"},  # protocols over many searches and trainings
    "choices": {"core", "methods"},  # choice modules for a user's own model: the method units, no space of ours
}
TOP_LEVEL = {"cli", "__main__"}  # the command line: may import anything


def package_imports(source: str, module: str = "x") -> set[tuple[str, bool]]:
    """(imported package module as a dotted name, lazy) pairs of `module`'s source; lazy: the import sits
    inside a function body. Relative imports are resolved against `module`'s folder."""
    package = module.split(".")[:-1]
    found = set()

    def resolve(level: int, name: str | None) -> str:
        base = package[: len(package) - (level - 1)] if level > 1 else package
        return ".".join(base + ([name] if name else []))

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level > 0:  # from .x import y / from ..core.x import y / from . import x
                    prefix = resolve(child.level, child.module)
                    targets = (
                        [prefix] if child.module else [".".join(filter(None, [prefix, a.name])) for a in child.names]
                    )
                elif child.module == "dartsnas":
                    targets = [a.name for a in child.names]
                elif child.module and child.module.startswith("dartsnas."):
                    targets = [child.module.removeprefix("dartsnas.")]
                else:
                    targets = []
                found.update((t, inner) for t in targets)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "dartsnas" or alias.name.startswith("dartsnas."):
                        found.add((alias.name.removeprefix("dartsnas").lstrip(".") or "dartsnas", inner))
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def imports_of(module: str) -> set[tuple[str, bool]]:
    return package_imports((PACKAGE / (module.replace(".", "/") + ".py")).read_text(), module)


def folder(module: str) -> str:
    return module.split(".")[0] if "." in module else module


def test_the_import_reader_sees_every_form():
    source = (
        "from .a import x\nfrom . import b\nfrom ..core.c import y\nfrom dartsnas import d\n"
        "import dartsnas.e.f\nimport dartsnas\nimport torch\nfrom torch import nn\n"
        "def f():\n    from .g import z\n    import dartsnas.h as h\n"
        "class K:\n    def m(self):\n        from ..i import w\n"
    )
    assert package_imports(source, "conv.search") == {
        ("conv.a", False),
        ("conv.b", False),
        ("core.c", False),
        ("d", False),
        ("e.f", False),
        ("dartsnas", False),
        ("conv.g", True),
        ("h", True),
        ("i", True),
    }


def test_the_reader_finds_the_known_edges():
    # Guards the tests below against passing vacuously (say, after a change of import style).
    assert {m for m, _ in imports_of("conv.supernet")} >= {"core.genotype", "conv.ops", "conv.spaces", "conv.fast"}
    assert ("core.config", True) in imports_of("cli")


def test_every_module_lives_in_a_known_room():
    # A module outside the rooms would escape every rule below: give it a room (and a rule) first.
    assert set(MODULES) >= {"core.genotype", "conv.plain", "conv.supernet", "recurrent.model", "cli"}
    assert {folder(m) for m in MODULES} <= set(ALLOWED) | TOP_LEVEL


def rooms_tree(markdown: str) -> set[str]:
    """The modules docs/design.md's tree names, as dotted names like MODULES: the first fenced block after
    "## The rooms", where a folder (`conv/`) holds the lines indented deeper below it, and each `name.py` on a
    line is a module of the innermost folder open there (a folder's own line and its wrapped lines included)."""
    block = markdown.split("## The rooms", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines() if line.strip()]
    assert lines[0].strip() == "dartsnas/", lines[0]
    named, folders = set(), []  # folders: (indent, name) of the folders open at this line
    for line in lines[1:]:
        indent, words = len(line) - len(line.lstrip()), line.split()
        while folders and folders[-1][0] >= indent:
            folders.pop()
        if words[0].endswith("/"):
            folders.append((indent, words[0].rstrip("/")))
        path = [name for _, name in folders]
        named |= {".".join([*path, w.rstrip(",.;:")[:-3]]) for w in words if re.fullmatch(r"\w+\.py[,.;:]?", w)}
    return named


def test_the_design_docs_tree_names_every_module():
    # docs/design.md's tree is the map of the rooms; a module missing from it (21 were) or named there but gone
    # fails here, so the map cannot drift from the package again.
    named = rooms_tree((Path(__file__).resolve().parents[1] / "docs" / "design.md").read_text())
    assert {
        "core.genotype",
        "conv.nb201.table",
        "recurrent.text",
        "experiments.skips",
        "cli",
    } <= named  # the reader works
    missing, stale = sorted(set(MODULES) - named), sorted(named - set(MODULES))
    assert not missing, f"docs/design.md's tree (## The rooms) does not name these modules: {missing}"
    assert not stale, f"docs/design.md's tree names modules that do not exist: {stale}"


@pytest.mark.parametrize("module", [m for m in MODULES if m not in TOP_LEVEL])
def test_rooms_import_only_the_rooms_below_them(module):
    own = folder(module)
    reached = {folder(m) for m, _ in imports_of(module)}
    assert reached <= ALLOWED[own] | {own}, f"{module} imports from {sorted(reached - ALLOWED[own] - {own})}"


@pytest.mark.parametrize("module", ["core.genotype", "data.download"])
def test_bottom_layer_imports_nothing_of_the_package(module):
    assert imports_of(module) == set()


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle of the graph `edges` (module -> the modules it imports), each once, as a path."""
    found, seen = [], set()

    def walk(path):
        for nxt in sorted(edges.get(path[-1], ())):
            if nxt == path[0]:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    found.append(path + [nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle from its smallest module only
                walk(path + [nxt])

    for start in sorted(edges):
        walk([start])
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back():
    # Lazy imports count: a cycle through a function body still ties the two modules together.
    edges = {m: {i for i, _ in imports_of(m) if i in MODULES and i != m} for m in MODULES}
    assert cycles(edges) == []


def test_the_plain_network_borrows_nothing_from_the_fast_code():
    assert {m for m, _ in imports_of("conv.plain")} <= {"conv.spaces"}


def test_core_plot_imports_only_genotypes():
    assert {m for m, _ in imports_of("core.plot")} <= {"core.genotype"}


@pytest.mark.parametrize("module", [m for m in MODULES if m not in TOP_LEVEL])
def test_nothing_imports_cli(module):
    # __main__ is the entry point of `python -m dartsnas`: it is the command line's one caller.
    assert "cli" not in {m for m, _ in imports_of(module)}


def test_genotypes_and_configs_import_without_torch():
    modules = (
        "dartsnas.core.genotype, dartsnas.recurrent.genotype, dartsnas.core.config, dartsnas.conv.config, "
        "dartsnas.recurrent.config"
    )
    code = f"import {modules}, sys; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_space_has_a_search_network_and_derivation_rules():
    from dartsnas.conv.spaces import DERIVATIONS, SPACES
    from dartsnas.conv.supernets import SEARCH_NETWORKS

    assert set(SEARCH_NETWORKS) == set(SPACES) == set(DERIVATIONS)
