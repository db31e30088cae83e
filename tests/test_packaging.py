"""Build systems: pyproject.toml reads the pins of the requirements files, the running environment has
them, and Bazel's BUILD has one py_test per test module and one py_binary per app.

BUILD is evaluated here as the Python it also is (Starlark's syntax is a subset), with each Bazel rule
replaced by a recorder and `glob` by pathlib, so no Bazel is needed.
"""

import ast
import importlib.metadata
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

# The source tree, also under Bazel (whose runfiles are symlinks into it).
ROOT = Path(__file__).resolve().parents[1]
REQUIREMENT_FILES = ("requirements.txt", "requirements-test.txt")  # runtime, test extra
EXTRA_FILES = ("requirements-torch.txt",)  # optional extras, not installed in the test environment
PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!]+")
BAZEL_RULES = (
    "package",
    "exports_files",
    "filegroup",
    "genrule",
    "py_library",
    "py_binary",
    "py_test",
    "py_runtime",
    "py_runtime_pair",
    "toolchain",
)


def read_pins(name):
    """`{canonical name: Requirement}` of requirements file `name` ({} if it does not exist);
    fails on any line that is not a comment or an exact `name==version` pin."""
    path = ROOT / name
    if not path.exists():
        return {}
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert PIN.fullmatch(line), (
            f"{name}:{number}: {line!r} is not an exact pin `name==version` (setuptools reads these "
            "files as plain requirement lists: no pip options, no inline comments)"
        )
        req = Requirement(line)
        key = canonicalize_name(req.name)
        assert key not in pins, f"{name}:{number}: {req.name} pinned twice"
        pins[key] = req
    return pins


def evaluate_build():
    """The targets that ROOT/BUILD declares: `{rule: {name: attributes}}`."""
    targets = {rule: {} for rule in BAZEL_RULES}

    def recorder(rule):
        def record(*args, name=None, **attrs):  # package(...), exports_files([...]) have no name
            assert name is None or name not in targets[rule], (
                f"BUILD declares {rule} {name!r} twice"
            )
            targets[rule][name] = attrs

        return record

    def paths(pattern):  # Bazel's trailing `**` matches files at any depth; pathlib's only folders
        return ROOT.glob(pattern + "/*" if pattern.endswith("**") else pattern)

    def glob(include, exclude=()):
        found = {
            str(p.relative_to(ROOT)) for pattern in include for p in paths(pattern) if p.is_file()
        }
        return sorted(
            found - {str(p.relative_to(ROOT)) for pattern in exclude for p in paths(pattern)}
        )

    def load(label, *symbols, **aliases):
        for symbol in list(symbols) + list(aliases):
            assert symbol in env, (
                f"BUILD loads {symbol!r} from {label}; teach evaluate_build() that rule"
            )

    env = {rule: recorder(rule) for rule in BAZEL_RULES}
    env.update(
        glob=glob, load=load, __builtins__={"len": len, "list": list, "dict": dict, "str": str}
    )
    exec(compile((ROOT / "BUILD").read_text(), "BUILD", "exec"), env)
    return targets, env


@pytest.fixture(scope="module")
def build():
    return evaluate_build()


def test_one_py_test_per_test_module(build):
    targets, _ = build
    # tests mirror the package: tests/<stage>/test_*.py, repository-wide ones in tests/
    modules = sorted(
        p.relative_to(ROOT).as_posix()
        for pattern in ("test_*.py", "*/test_*.py")
        for p in (ROOT / "tests").glob(pattern)
    )
    assert len({Path(m).stem for m in modules}) == len(modules), "test module names must be unique"
    assert any("/" in m[len("tests/") :] for m in modules)
    assert sorted(targets["py_test"]) == sorted(Path(m).stem for m in modules)
    support = targets["py_library"]["test_support"]
    assert set(support["srcs"]) == {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "tests").glob("*.py")
        if not p.name.startswith("test_")
    }
    assert "tests/conftest.py" in support["srcs"]
    for module in modules:
        attrs = targets["py_test"][Path(module).stem]
        assert attrs["main"] == "tools/pytest_main.py"
        assert attrs["srcs"] == [module, "tools/pytest_main.py"]
        assert attrs["args"] == [module]
        assert ":test_support" in attrs["deps"]


def test_library_holds_every_module_and_apps_are_python_m(build):
    targets, env = build
    lib = targets["py_library"]["spos_tf"]
    assert set(lib["srcs"]) == {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "spos_tf").rglob("*.py")
    }
    assert {"spos_tf/data/__init__.py", "spos_tf/quant/__init__.py"} <= set(lib["srcs"])
    # An app is a subpackage with a __main__.py (`python -m spos_tf.<app>`); each has a py_binary.
    # No other module has a `__main__` guard.
    apps = {p.parent.name for p in (ROOT / "spos_tf").glob("*/__main__.py")}
    assert apps <= set(env["APPS"]), f"add {sorted(apps - set(env['APPS']))} to APPS in BUILD"
    assert set(targets["py_binary"]) == {
        a for a in env["APPS"] if (ROOT / f"spos_tf/{a}/__main__.py").exists()
    }
    guarded = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "spos_tf").rglob("*.py")
        if p.name != "__main__.py" and '__name__ == "__main__"' in p.read_text()
    }
    assert not guarded, f"apps belong in a __main__.py: {sorted(guarded)}"
    assert {"train", "search", "costs"} <= set(targets["py_binary"])
    for app, attrs in targets["py_binary"].items():
        assert attrs["deps"] == [":spos_tf"]
        assert (
            f'runpy.run_module("spos_tf.{app}", run_name="__main__"'
            in targets["genrule"][app + "_main"]["cmd"]
        )


def test_bazel_offline_repositories_exist():
    workspace = (ROOT / "WORKSPACE").read_text()
    paths = re.findall(r'local_repository\(\s*name = "(\w+)",\s*path = "([^"]+)"', workspace)
    assert {name for name, _ in paths} == {"rules_cc", "remote_coverage_tools"}
    for name, path in paths:
        assert f'workspace(name = "{name}")' in (ROOT / path / "WORKSPACE").read_text()
    assert (ROOT / "tools/venv_python.sh").stat().st_mode & 0o111, (
        "the interpreter wrapper must be executable"
    )


def test_pyproject_reads_the_requirements_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(project["project"]["dynamic"]) >= {"dependencies", "optional-dependencies"}
    assert "dependencies" not in project["project"], "pins belong in requirements.txt only"
    dynamic = project["tool"]["setuptools"]["dynamic"]
    assert dynamic["dependencies"] == {"file": ["requirements.txt"]}
    assert dynamic["optional-dependencies"] == {
        "test": {"file": ["requirements-test.txt"]},
        "torch": {"file": ["requirements-torch.txt"]},
    }
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert packages == [
        "spos_tf",
        "spos_tf.*",
    ]  # spos_tf.data, spos_tf.quant and any later subpackage
    version = next(
        node.value.value
        for node in ast.parse((ROOT / "spos_tf/__init__.py").read_text()).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "__version__"
    )
    assert Version(version)


def test_non_python_package_files_are_package_data(build):
    """Every file under spos_tf/ that is not Python (a checksums.tsv, say) is in the wheel
    (pyproject.toml's package-data) and in Bazel's runfiles (the library's data)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = [
        pattern
        for patterns in project["tool"]["setuptools"]["package-data"].values()
        for pattern in patterns
    ]
    files = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "spos_tf").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    )
    missing = [f for f in files if not any(Path(f).match(pattern) for pattern in patterns)]
    assert not missing, (
        f"add patterns for {missing} to [tool.setuptools.package-data] in pyproject.toml"
    )
    targets, _ = build
    assert set(targets["py_library"]["spos_tf"]["data"]) == set(files)


def test_pins_are_exact_disjoint_and_installed():
    files = {name: read_pins(name) for name in REQUIREMENT_FILES}
    assert files["requirements.txt"], "requirements.txt has no pins"
    runtime, test = files.values()
    assert not set(runtime) & set(test), f"pinned in both files: {sorted(set(runtime) & set(test))}"
    assert "pytest" in {**runtime, **test}
    wrong = {}
    for req in {**runtime, **test}.values():
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or Version(installed) not in req.specifier:
            wrong[req.name] = (str(req.specifier), installed)
    assert not wrong, f"the running environment differs from the pins (pinned, installed): {wrong}"


def test_optional_extras_pin_exactly_and_apart_from_the_runtime():
    runtime = read_pins("requirements.txt")
    for name in EXTRA_FILES:
        pins = read_pins(name)  # fails on anything but `name==version` lines
        assert pins, f"{name} pins nothing"
        assert not set(pins) & set(runtime), (
            f"{name} repeats runtime pins {sorted(set(pins) & set(runtime))}"
        )


def test_pytest_main_follows_bazel_test_protocol():
    spec = importlib.util.spec_from_file_location("pytest_main", ROOT / "tools/pytest_main.py")
    pytest_main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pytest_main)
    assert pytest_main.pytest_args(["tests/spaces/test_space.py"], {}) == [
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/spaces/test_space.py",
    ]
    args = pytest_main.pytest_args(
        ["tests/spaces/test_space.py"],
        {
            "XML_OUTPUT_FILE": "/o/test.xml",
            "TEST_TMPDIR": "/t",
            "TESTBRIDGE_TEST_ONLY": "round_trip",
        },
    )
    assert args[3:] == [
        "tests/spaces/test_space.py",
        "--junitxml=/o/test.xml",
        "--basetemp=/t/pytest",
        "-k",
        "round_trip",
    ]


# Library modules (not a __main__.py, outside spos_tf/runs/) that may still import absl, with the
# reason. Empty: flags are defined and parsed by spos_tf/runs/ (config_flags, flagfiles, app) and
# by the apps; a library's "define_flags(fv)" / "config_from_flags(fv)" take a FlagValues they are
# given and import no absl.
ABSL_EXCEPTIONS = {}


def imported_modules(path):
    """`[(line, module)]` of every import in `path`, at any depth (lazy imports in functions too);
    `from a.b import c` gives `a.b` and `a.b.c` (c may be a module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_only_apps_and_runs_touch_absl_and_no_library_imports_an_app():
    """Issue 21: a library takes typed configs; only an app's __main__.py (and the flag plumbing
    of spos_tf/runs/) touches absl, and no library module imports an app (a __main__ module or
    the apps' start, spos_tf.runs.app)."""
    apps, absl = [], []
    for path in sorted((ROOT / "spos_tf").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if path.name == "__main__.py":
            continue
        for line, module in imported_modules(path):
            parts = module.split(".")
            if "__main__" in parts or module == "spos_tf.runs.app":
                apps.append(f"{rel}:{line} imports {module}")
            if parts[0] == "absl" and not rel.startswith("spos_tf/runs/"):
                if rel not in ABSL_EXCEPTIONS:
                    absl.append(f"{rel}:{line} imports {module}")
    assert not apps, f"library modules import apps: {apps}"
    assert not absl, (
        f"library modules import absl (take a typed config, or a FlagValues, instead): {absl}"
    )
    assert set(ABSL_EXCEPTIONS) <= {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "spos_tf").rglob("*.py")
    }, "ABSL_EXCEPTIONS names a module that no longer exists"
