"""Keeps `BUILD` in sync with the tree: every module and test has a target, deps are declared.

`BUILD` is Starlark as Bazel reads it; here it is evaluated with stub rules, so the check needs
no Bazel. A test fails when a Python file has no target, a target names a missing file, or a
file imports a project module whose target is not among its target's `deps`.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIRS = ("swav_keras", "backends", "recipes", "benchmarks")
RULES = ("py_library", "py_test", "py_binary")


def load_build(path=None):
    path = path or os.path.join(ROOT, "BUILD")
    targets = {}

    def rule(kind):
        def add(name, srcs=(), deps=(), **kwargs):
            assert name not in targets, f"target {name!r} is defined twice in BUILD"
            targets[name] = {"kind": kind, "srcs": list(srcs), "deps": list(deps), **kwargs}

        return add

    with open(path) as f:
        code = f.read()
    namespace = {kind: rule(kind) for kind in RULES}
    namespace["load"] = lambda *args, **kwargs: None
    namespace["package"] = lambda **kwargs: None
    namespace["glob"] = lambda patterns, **kwargs: list(patterns)
    exec(compile(code, path, "exec"), namespace)
    return targets


def python_files():
    files = []
    for top in SOURCE_DIRS + ("tests",):
        for folder, _, names in os.walk(os.path.join(ROOT, top)):
            if "__pycache__" in folder:
                continue
            for name in names:
                if name.endswith(".py"):
                    files.append(os.path.relpath(os.path.join(folder, name), ROOT))
    return sorted(files)


def module_file(module):
    """Maps a dotted module name to the file of the repository that defines it, or None."""
    parts = module.split(".")
    if parts[0] == "swav_keras" and len(parts) > 1 and parts[1] == "backends":
        parts = ["backends"] + parts[2:]
    elif parts[0] not in ("swav_keras", "recipes", "benchmarks"):
        parts = ["tests"] + parts  # test support modules are imported by bare name
    base = os.path.join(ROOT, *parts)
    if os.path.isfile(base + ".py"):
        return os.path.relpath(base + ".py", ROOT)
    if os.path.isfile(os.path.join(base, "__init__.py")):
        return os.path.relpath(os.path.join(base, "__init__.py"), ROOT)
    return None


def imported_files(path):
    """Files of the repository that `path` imports directly (as Bazel deps count them)."""
    tree = ast.parse(open(os.path.join(ROOT, path)).read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            files = [module_file(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import module` depends on the module; `from module import name`
            # on the module that defines the name.
            files = [module_file(f"{node.module}.{alias.name}") for alias in node.names]
            if not all(files):
                files = [f for f in files if f] + [module_file(node.module)]
        else:
            continue
        found.update(f for f in files if f and f != path)
    return found


TARGETS = load_build()
OWNER = {src: name for name, t in TARGETS.items() for src in t["srcs"]}


def test_every_python_file_has_a_target():
    missing = [f for f in python_files() if f not in OWNER and not f.endswith("conftest.py")]
    assert not missing, f"add these files to BUILD: {missing}"


def test_every_test_file_is_a_py_test():
    wrong = [
        f for f in python_files()
        if f.startswith("tests/") and f.endswith("_test.py")
        and TARGETS[OWNER[f]]["kind"] != "py_test"
    ]
    assert not wrong, f"these test files need a py_test target: {wrong}"


def test_every_listed_file_exists():
    missing = [src for src in OWNER if not os.path.isfile(os.path.join(ROOT, src))]
    assert not missing, f"BUILD names files that do not exist: {missing}"


def test_every_dep_is_a_target():
    unknown = [
        (name, dep) for name, t in TARGETS.items() for dep in t["deps"]
        if dep.startswith(":") and dep[1:] not in TARGETS
    ]
    assert not unknown, f"unknown deps: {unknown}"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_imports_are_declared_deps(name):
    target = TARGETS[name]
    declared = {dep[1:] for dep in target["deps"] if dep.startswith(":")}
    undeclared = set()
    for src in target["srcs"]:
        for imported in imported_files(src):
            owner = OWNER.get(imported)
            if owner is None:
                undeclared.add(f"{imported} (no target)")
            elif owner != name and owner not in declared:
                undeclared.add(f":{owner}")
    assert not undeclared, f"{name} imports but does not declare: {sorted(undeclared)}"


def test_import_scanner_sees_project_imports():
    # The dependency check can fail: it sees what a module imports.
    assert "swav_keras/sinkhorn.py" in imported_files("swav_keras/swav_loss.py")
    assert "backends/__init__.py" in imported_files("swav_keras/sinkhorn.py")
    assert "swav_keras/validation.py" in imported_files("swav_keras/sinkhorn.py")
