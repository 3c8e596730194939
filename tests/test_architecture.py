"""The package map, read from the code: which package may import which, checked on every
import statement (module level, function-local and type-checking-only alike, since a lazy
import is still a dependency), plus no import circles.

The rules:
- the repository's stages import one way: symbolic <- audio <- eval <- pipeline (configs is
  read by all and imports none of them; the `stemforge` front door re-exports any);
- inside symbolic, each sub-package imports only the ones listed in `SYMBOLIC_PACKAGES`;
- what `pipeline run` imports to compose (everything reachable from `RUNTIME_ENTRY_POINTS`)
  holds no training or recipe code;
- no two modules reach each other through imports.

docs/architecture.md shows the same map as a table generated here:
`python tests/test_architecture.py --write` rewrites it, and a test fails when it is stale.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# installed name -> repository folder (pyproject.toml's package-dir)
STAGE_FOLDERS: dict[str, str] = {"configs": "configs", "symbolic": "symbolic", "audio": "audio",
                                 "eval": "eval", "pipeline": "pipeline", "stemforge": "stemforge"}
# a stage may import the stages listed for it (and itself)
STAGE_IMPORTS: dict[str, frozenset[str]] = {
    "configs": frozenset(),
    "symbolic": frozenset({"configs"}),
    "audio": frozenset({"configs", "symbolic"}),
    "eval": frozenset({"configs", "symbolic", "audio"}),
    "pipeline": frozenset({"configs", "symbolic", "audio", "eval"}),
    "stemforge": frozenset({"configs", "symbolic", "audio", "eval", "pipeline"}),
}


@dataclass(frozen=True)
class SubPackage:
    holds: str  # what a reader finds there
    may_import: frozenset[str]  # the other symbolic sub-packages it may import


SYMBOLIC_PACKAGES: dict[str, SubPackage] = {
    "core": SubPackage("the shared basics: errors, atomic file and folder writes, the tick grid, hashing, "
                       "progress, core count, cache root", frozenset()),
    "music": SubPackage("the music every stage reads: Conditions and keys, notes and arrangements, chords and "
                        "progressions, the drum map, the feel grids, tokens, canonical forms",
                        frozenset({"core"})),
    "decoding": SubPackage("the composer model and its decoders: model folders, style counts, the torch, "
                           "compiled and int8 decoders, their numba kernels, drawing a token",
                           frozenset({"core", "music"})),
    "runtime": SubPackage("composing a piece: sampling settings, the grammar, the plan and its guide, forms, "
                          "grooves, the sampler, compose, run.json", frozenset({"core", "music", "decoding"})),
    "training": SubPackage("a model from MIDI: prepare (meter, windows, novelty index), train, fine-tune",
                           frozenset({"core", "music", "decoding"})),
    "recipes": SubPackage("the shipped tables and corpus from real data: the corpus builder and its rules, "
                          "harmony data readers, the progression and groove tables' builders",
                          frozenset({"core", "music", "runtime"})),
}
# what `pipeline run` and the service's workers import to compose a piece
RUNTIME_ENTRY_POINTS = ("stemforge.pipeline.run", "stemforge.symbolic.runtime.compose")
NOT_IN_RUNTIME = ("stemforge.symbolic.training", "stemforge.symbolic.recipes")


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (a `from package import module` resolved to the module)
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line} imports {self.target}"


def module_files() -> dict[str, Path]:
    """Installed module name -> source file, for every module of the package."""
    modules: dict[str, Path] = {}
    for stage, folder in STAGE_FOLDERS.items():
        prefix = "stemforge" if stage == "stemforge" else f"stemforge.{stage}"
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([prefix, *parts])] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every stemforge import in a module, wherever it sits in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from stemforge.symbolic.core import errors` imports the module errors
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module
                       for alias in node.names]
        else:
            continue
        found += [Import(name, target, path, node.lineno) for target in dict.fromkeys(targets)
                  if target == "stemforge" or target.startswith("stemforge.")]
    return found


def all_imports() -> list[Import]:
    modules = module_files()
    return [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGE_FOLDERS else "stemforge"


def symbolic_package_of(module: str) -> str | None:
    """The symbolic sub-package of a module (None outside symbolic, "" for symbolic itself)."""
    parts = module.split(".")
    if parts[:2] != ["stemforge", "symbolic"]:
        return None
    return parts[2] if len(parts) > 2 else ""


def layer_violations(imports: list[Import]) -> list[str]:
    problems = []
    for imp in imports:
        source_stage, target_stage = stage_of(imp.source), stage_of(imp.target)
        if target_stage != source_stage and target_stage not in STAGE_IMPORTS[source_stage]:
            problems.append(f"{imp.where()}: {source_stage} may not import {target_stage} "
                            f"(stages import one way: symbolic <- audio <- eval <- pipeline)")
            continue
        source_pkg, target_pkg = symbolic_package_of(imp.source), symbolic_package_of(imp.target)
        if source_pkg is None or target_pkg is None or source_pkg == target_pkg:
            continue
        if source_pkg == "":
            continue  # symbolic/__init__.py is empty; a future one may gather
        allowed = SYMBOLIC_PACKAGES[source_pkg].may_import
        if target_pkg not in allowed:
            problems.append(f"{imp.where()}: symbolic.{source_pkg} may import only "
                            f"{', '.join(sorted(allowed)) or 'nothing else in symbolic'}")
    return problems


def import_circles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.target != imp.source:
            graph.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def reachable(start: str, imports: list[Import]) -> dict[str, Import | None]:
    """Every module `start` imports, directly or not, with the import that first reached it."""
    by_source: dict[str, list[Import]] = {}
    for imp in imports:
        by_source.setdefault(imp.source, []).append(imp)
    seen: dict[str, Import | None] = {start: None}
    todo = [start]
    while todo:
        for imp in by_source.get(todo.pop(), []):
            if imp.target not in seen:
                seen[imp.target] = imp
                todo.append(imp.target)
    return seen


def chain_to(module: str, seen: dict[str, Import | None]) -> str:
    steps = []
    while (imp := seen.get(module)) is not None:
        steps.append(imp.where())
        module = imp.source
    return " <- ".join(steps)


# ----------------------------------------------------------------------------- the doc's map

MAP_START = "<!-- package-map: generated by `python tests/test_architecture.py --write` -->"
MAP_END = "<!-- package-map: end -->"
ARCHITECTURE_DOC = REPO / "docs" / "architecture.md"


def package_map(imports: list[Import]) -> str:
    """The markdown tables of docs/architecture.md: the symbolic sub-packages (modules, what they
    may import, what they do import) and the stages."""
    modules = module_files()
    used: dict[str, set[str]] = {}
    for imp in imports:
        source_pkg, target_pkg = symbolic_package_of(imp.source), symbolic_package_of(imp.target)
        if source_pkg and target_pkg and target_pkg != source_pkg:
            used.setdefault(source_pkg, set()).add(target_pkg)
    lines = [MAP_START, "", "| symbolic/ | holds | modules | may import | imports today |", "|---|---|---|---|---|"]
    for pkg, sub in SYMBOLIC_PACKAGES.items():
        names = sorted(m.rpartition(".")[2] for m in modules if symbolic_package_of(m) == pkg and m.count(".") == 3)
        lines.append(f"| `{pkg}/` | {sub.holds} | {', '.join(names)} | {', '.join(sorted(sub.may_import)) or '-'} "
                     f"| {', '.join(sorted(used.get(pkg, ()))) or '-'} |")
    stage_used: dict[str, set[str]] = {}
    for imp in imports:
        if stage_of(imp.source) != stage_of(imp.target):
            stage_used.setdefault(stage_of(imp.source), set()).add(stage_of(imp.target))
    lines += ["", "| stage | may import | imports today |", "|---|---|---|"]
    for stage, allowed in STAGE_IMPORTS.items():
        shown = "stemforge (the front door)" if stage == "stemforge" else f"{stage}/"
        lines.append(f"| {shown} | {', '.join(sorted(allowed)) or '-'} | "
                     f"{', '.join(sorted(stage_used.get(stage, ()))) or '-'} |")
    lines += ["", f"Not reachable from {', '.join(f'`{m}`' for m in RUNTIME_ENTRY_POINTS)}: "
              f"{', '.join(f'`{m}`' for m in NOT_IN_RUNTIME)}.", ""]
    lines += ["| module | what it holds (the first sentence of its docstring) |", "|---|---|"]
    for pkg in SYMBOLIC_PACKAGES:
        for name, path in modules.items():
            if symbolic_package_of(name) == pkg and name.count(".") == 3:
                lines.append(f"| `{path.relative_to(REPO)}` | {first_sentence(path)} |")
    lines += ["", MAP_END]
    return "\n".join(lines)


def first_sentence(path: Path) -> str:
    """A module's docstring up to its first full stop, on one line (pipes escaped for the table)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = " ".join(doc.split("\n\n", 1)[0].split())
    end = next((i + 1 for i, char in enumerate(paragraph)
                if char == "." and (i + 1 == len(paragraph) or paragraph[i + 1] == " ")), len(paragraph))
    return paragraph[:end].replace("|", "\\|") or "(no docstring)"


def write_package_map() -> None:
    text = ARCHITECTURE_DOC.read_text()
    head, _, rest = text.partition(MAP_START)
    _, _, tail = rest.partition(MAP_END)
    ARCHITECTURE_DOC.write_text(head + package_map(all_imports()) + tail)


# ----------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return all_imports()


def test_every_import_follows_the_layers(imports: list[Import]) -> None:
    problems = layer_violations(imports)
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_no_module_reaches_itself_through_imports(imports: list[Import]) -> None:
    circles = import_circles(imports)
    assert not circles, "import circles:\n" + "\n".join(
        " <-> ".join(circle) + ": " + "; ".join(i.where() for i in imports if i.source in circle and i.target in circle)
        for circle in circles)


@pytest.mark.parametrize("entry", RUNTIME_ENTRY_POINTS)
def test_composing_imports_no_training_or_recipe_code(entry: str, imports: list[Import]) -> None:
    seen = reachable(entry, imports)
    offending = sorted(m for m in seen if m.startswith(NOT_IN_RUNTIME))
    assert not offending, "\n".join(f"{m}: {chain_to(m, seen)}" for m in offending)


def test_every_symbolic_module_sits_in_a_named_sub_package() -> None:
    """No module directly in symbolic/ and no sub-package without a place in the map."""
    modules = module_files()
    unplaced = [name for name in modules if symbolic_package_of(name) not in (None, "", *SYMBOLIC_PACKAGES)]
    flat = [name for name, path in modules.items()
            if path.parent == REPO / "symbolic" and path.name != "__init__.py"]
    assert unplaced == [] and flat == []


def test_the_checks_catch_a_planted_violation(tmp_path: Path) -> None:
    """The rules are not vacuous: a runtime module importing recipe code, a symbolic module
    importing eval and a circle are each reported, naming the file and line."""
    fake = tmp_path / "planted.py"
    fake.write_text("x = 1\n")
    planted = [Import("stemforge.symbolic.runtime.compose", "stemforge.symbolic.recipes.corpus", fake, 7),
               Import("stemforge.symbolic.decoding.kernels", "stemforge.eval.cache", fake, 9),
               Import("stemforge.symbolic.music.harmony", "stemforge.symbolic.music.conditions", fake, 3),
               Import("stemforge.symbolic.music.conditions", "stemforge.symbolic.music.harmony", fake, 4)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Import, "where", lambda self: f"planted.py:{self.line} imports {self.target}")
        problems = layer_violations(planted)
        assert any("planted.py:7 imports stemforge.symbolic.recipes.corpus" in p for p in problems)
        assert any("planted.py:9 imports stemforge.eval.cache" in p for p in problems)
    assert import_circles(planted) == [["stemforge.symbolic.music.conditions", "stemforge.symbolic.music.harmony"]]
    seen = reachable("stemforge.symbolic.runtime.compose", planted)
    assert "stemforge.symbolic.recipes.corpus" in seen


def test_the_docs_package_map_is_the_codes(imports: list[Import]) -> None:
    text = ARCHITECTURE_DOC.read_text()
    assert MAP_START in text and MAP_END in text
    shown = MAP_START + text.split(MAP_START, 1)[1].split(MAP_END, 1)[0] + MAP_END
    assert shown == package_map(imports), "docs/architecture.md is stale: run python tests/test_architecture.py --write"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_package_map()
    else:
        print(package_map(all_imports()))


def test_every_file_a_change_recipe_names_exists() -> None:
    """The recipes in docs/architecture.md name files by path: each is there."""
    recipes = (REPO / "docs" / "architecture.md").read_text().split("## Change recipes", 1)[1]
    named = set(re.findall(r"`((?:configs|symbolic|pipeline|audio|eval|tests|scripts)/[\w/.]+)`", recipes))
    assert len(named) >= 10
    missing = sorted(path for path in named if not (REPO / path).exists())
    assert missing == [], f"docs/architecture.md's change recipes name files that are not there: {missing}"
