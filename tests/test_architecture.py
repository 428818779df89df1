"""The package's shape: imports run one way (no cycles, counting every import: module level, inside
functions and under TYPE_CHECKING), the contract modules are leaves of their packages, plug-ins
never import their own package, and the registries refuse a name twice unless told to replace."""
import ast
from pathlib import Path

import pytest

from domainft.errors import DomainftError
from domainft.methods import METHODS, TuningMethod, register_method
from domainft.methods.full import FullOptions, FullTuning
from domainft.tasks import TASKS, Task, register_task
from domainft.tasks.classification import ClassificationTask

PACKAGE = Path(__file__).resolve().parent.parent / "domainft"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The package modules `name` imports anywhere in its source (`from a.b import c` counts a.b,
    and a.b.c when c is a module; a parent package is not counted)."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle():
    assert len(GRAPH) > 40 and GRAPH["domainft.pipeline"]  # the walk sees the package
    assert cycles() == []


def test_a_cycle_is_found_when_there_is_one(monkeypatch):
    monkeypatch.setitem(GRAPH, "domainft.errors", {"domainft.pipeline"})
    assert any("domainft.errors" in c and "domainft.pipeline" in c for c in cycles())


@pytest.mark.parametrize("low, high", [
    ("domainft.data.spec", "domainft.recipe"), ("domainft.tasks.base", "domainft.tasks"),
    ("domainft.methods.base", "domainft.methods"), ("domainft.recipe", "domainft.pipeline"),
    ("domainft.export", "domainft.pipeline"), ("domainft.rundir", "domainft.pipeline"),
    ("domainft.serving", "domainft.model"), ("domainft.pipeline", "domainft.cli"),
])
def test_lower_layers_never_reach_higher_ones(low, high):
    seen, todo = set(), [low]
    while todo:
        for m in GRAPH[todo.pop()] - seen:
            seen.add(m)
            todo.append(m)
    assert high not in seen, f"{low} imports {high} (directly or through others)"


def test_contract_modules_are_leaves_and_plugins_never_import_their_package():
    assert not {m for m in GRAPH["domainft.data.spec"] if m.startswith("domainft.data")}
    for package in ("domainft.tasks", "domainft.methods"):
        assert not {m for m in GRAPH[f"{package}.base"] if m.startswith(package)}
        for name in MODULES:
            if name.startswith(package + "."):
                assert package not in GRAPH[name], f"{name} imports {package}"


def test_serving_needs_neither_torch_nor_transformers():
    reached, todo = set(), ["domainft.serving"]
    while todo:
        for m in GRAPH[todo.pop()] - reached:
            reached.add(m)
            todo.append(m)
    for name in reached | {"domainft.serving"}:
        top = {n.split(".")[0] for n in _external_imports(name)}
        assert not top & {"torch", "transformers"}, f"{name} imports torch/transformers"


def _external_imports(name: str) -> set[str]:
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            out.add(node.module or "")
    return out


# --- registries --------------------------------------------------------------------------------

def test_registering_a_taken_name_is_an_error_unless_replacing():
    with pytest.raises(DomainftError, match=r"tuning method 'full' is already registered .*replace=True"):
        register_method("full")(type("MyFull", (FullTuning,), {}))
    assert METHODS.get("full") is FullTuning
    with pytest.raises(DomainftError, match=r"task 'classification' is already registered"):
        register_task("classification")(type("MyClassification", (ClassificationTask,), {}))
    assert type(TASKS.get("classification")) is ClassificationTask

    class Replacement(FullTuning):
        Options = FullOptions

    try:
        assert register_method("full", replace=True)(Replacement) is Replacement
        assert METHODS.get("full") is Replacement
    finally:
        register_method("full", replace=True)(FullTuning)
    assert METHODS.get("full") is FullTuning and FullTuning.name == "full"


def test_a_plugin_missing_a_required_hook_is_refused_by_name():
    class Half(Task):
        metric_names, default_metric = ("loss",), "loss"

        def load_data(self, spec):
            return None

    with pytest.raises(DomainftError, match=r"Half does not implement collator, count_truncated, encode, "
                                            r"metrics_for, model_class, predict, report, words"):
        register_task("half")(Half)
    assert "half" not in TASKS

    class NoLoad(TuningMethod):
        def prepare(self, model, ctx):
            return model

    with pytest.raises(DomainftError, match=r"NoLoad must implement load\(\)"):
        register_method("no_load")(NoLoad)
    with pytest.raises(DomainftError, match=r"is not a TuningMethod subclass"):
        register_method("not_a_method")(object)
    assert "no_load" not in METHODS and "not_a_method" not in METHODS
