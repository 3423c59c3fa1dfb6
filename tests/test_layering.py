"""The dependency direction of STYLE.md, read from the package source with `ast`: lower layers never
import higher ones, nothing imports the command line, and genotypes and configs load without torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import dartsnas

PACKAGE = Path(dartsnas.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def package_imports(source: str) -> set[tuple[str, bool]]:
    """(imported package module, lazy) pairs; lazy: the import sits inside a function body."""
    found = set()

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level > 0:  # from .x import y / from . import x
                    targets = [child.module] if child.module else [a.name for a in child.names]
                elif child.module == "dartsnas":
                    targets = [a.name for a in child.names]
                elif child.module and child.module.startswith("dartsnas."):
                    targets = [child.module]
                else:
                    targets = []
                found.update((t.removeprefix("dartsnas.").split(".")[0], inner) for t in targets)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "dartsnas" or alias.name.startswith("dartsnas."):
                        found.add((alias.name.removeprefix("dartsnas").lstrip(".").split(".")[0] or "dartsnas", inner))
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def imports_of(module: str) -> set[tuple[str, bool]]:
    return package_imports((PACKAGE / f"{module}.py").read_text())


def test_the_import_reader_sees_every_form():
    source = (
        "from .a import x\nfrom . import b\nfrom dartsnas.c import y\nfrom dartsnas import d\n"
        "import dartsnas.e\nimport dartsnas\nimport torch\nfrom torch import nn\n"
        "def f():\n    from .g import z\n    import dartsnas.h as h\n"
        "class K:\n    def m(self):\n        from .i import w\n"
    )
    assert package_imports(source) == {
        ("a", False), ("b", False), ("c", False), ("d", False), ("e", False), ("dartsnas", False),
        ("g", True), ("h", True), ("i", True),
    }


def test_the_reader_finds_the_known_edges():
    # Guards the tests below against passing vacuously (say, after a change of import style).
    assert {m for m, _ in imports_of("supernet")} >= {"genotype", "ops", "spaces"}
    assert ("config", True) in imports_of("cli")


def test_the_layered_modules_exist():
    assert {"genotype", "ops", "data", "spaces", "runs", "config", "plot", "cli"} <= set(MODULES)


@pytest.mark.parametrize("module", ["genotype", "ops", "data", "spaces", "runs"])
def test_bottom_layer_imports_nothing_of_the_package(module):
    assert imports_of(module) == set()


def test_config_imports_only_spaces_and_ops_lazily():
    found = imports_of("config")
    assert {m for m, lazy in found if not lazy} <= {"spaces"}
    assert {m for m, lazy in found if lazy} <= {"spaces", "ops"}  # ops (torch) only when validating


@pytest.mark.parametrize("module", [m for m in MODULES if m not in ("cli", "__main__")])
def test_nothing_imports_cli(module):
    # __main__ is the entry point of `python -m dartsnas`: it is the command line's one caller.
    assert "cli" not in {m for m, _ in imports_of(module)}


def test_plot_imports_only_genotype():
    assert {m for m, _ in imports_of("plot")} <= {"genotype"}


def test_genotype_and_config_import_without_torch():
    code = "import dartsnas.genotype, dartsnas.config, sys; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
