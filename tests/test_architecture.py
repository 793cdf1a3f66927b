"""The house rules of ARCHITECTURE.md that code can check: layers, public surface, error tree."""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from pathlib import Path

import pytest

import phe_trace
from phe_trace import crypto
from phe_trace import errors as errors_module
from phe_trace.errors import PheTraceError

SRC = Path(phe_trace.__file__).resolve().parent

#: Which top-level parts of phe_trace each part may import (ARCHITECTURE.md "Layers").
LAYER = {
    "errors": 0,
    "settings": 0,
    "serving": 0,
    "logs": 0,
    "clock": 0,
    "storage": 0,
    "crypto": 0,
    "protocol": 0,
    "exposure": 1,
    "analytics": 1,
    "web": 1,
    "agent": 2,
    "server": 2,
    "verification": 2,
    "aggregator": 2,
    "gateway": 2,
    "conformance": 2,
    "sim": 3,
    "hosting": 3,
    "cli": 4,
}
#: Same-layer imports the design allows: protocol stands on crypto; both raise from the
#: error root; the simulator starts the real server through the same composition
#: (``hosting``) that ``phe-trace server run`` uses, rather than a copy of it.
ALLOWED_SAME_LAYER = {
    ("sim", "hosting"),
    ("protocol", "crypto"),
    ("crypto", "errors"),
    ("crypto", "settings"),  # PHE_TRACE_NO_LIBCRYPTO, read through the one settings base
    ("protocol", "errors"),
    ("serving", "errors"),
    ("serving", "logs"),  # the foreground server writes uvicorn's records as JSON lines
}


def _part(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "phe_trace" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = ".".join(("phe_trace", *path.relative_to(SRC).with_suffix("").parts))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                found.add(".".join([*base, node.module or ""]).rstrip("."))
            elif node.module:
                found.add(node.module)
    return found


def _source_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if not p.name.endswith("_pb2.py"))


@pytest.mark.parametrize("path", _source_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layers(path: Path) -> None:
    """A package imports only packages in lower layers (ARCHITECTURE.md), never sideways or up."""
    own = path.relative_to(SRC).parts[0].removesuffix(".py")
    if own == "__init__" or own not in LAYER:
        return
    for module in _imports(path):
        other = _part(module)
        if other is None or other == own or other == "__init__" or other not in LAYER:
            continue
        lower = LAYER[other] < LAYER[own]
        assert lower or (own, other) in ALLOWED_SAME_LAYER, (
            f"{path.relative_to(SRC)} imports {module}: {own} (layer {LAYER[own]}) may not "
            f"import {other} (layer {LAYER[other]})"
        )
        assert other != "sim" or own in ("cli", "sim"), f"{path} imports the simulator"


def test_crypto_public_surface_is_pinned() -> None:
    """The names auditors and tools call (issue: 'exactly these public names')."""
    required = {
        "en_interval_number",
        "rolling_start_interval_number",
        "new_temporary_exposure_key",
        "rpik",
        "aemk",
        "rpi",
        "rpis",
        "encrypt_metadata",
        "decrypt_metadata",
        "Metadata",
        "SealingKey",
    }
    assert required <= set(crypto.__all__)
    assert all(hasattr(crypto, name) for name in crypto.__all__)


def _all_error_classes() -> list[type[PheTraceError]]:
    _exception_classes()  # imports every module that defines a class
    seen: list[type[PheTraceError]] = []
    todo: list[type[PheTraceError]] = [PheTraceError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def test_every_error_has_a_stable_code_and_a_docstring() -> None:
    """Errors: one tree rooted at PheTraceError, each class with a code and a 'when' docstring."""
    for cls in _all_error_classes():
        assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__qualname__} has no docstring"
        assert isinstance(cls.code, str) and cls.code.islower(), cls


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["phe_trace", *parts])


def _import_graph() -> dict[str, set[str]]:
    """Module → the phe_trace modules it imports, anywhere in the file (a function-level or
    ``TYPE_CHECKING`` import is a dependency too). ``from package import name`` depends on
    ``package.name`` when that is a module, else on ``package``."""
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    origin = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    origin = node.module or ""
                for alias in node.names:
                    full = f"{origin}.{alias.name}"
                    targets.append(full if full in files else origin)
            for target in targets:
                found = known(target) if target.startswith("phe_trace") else None
                if found and found != name:
                    graph[name].add(found)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def _collapsed(graph: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The graph with every module below ``depth`` dotted parts merged into its package."""

    def node(name: str) -> str:
        return ".".join(name.split(".")[:depth])

    merged: dict[str, set[str]] = {node(name): set() for name in graph}
    for name, targets in graph.items():
        for target in targets:
            a, b = node(name), node(target)
            inside = a.startswith(b + ".") or b.startswith(a + ".")
            if a != b and not inside:
                merged[a].add(b)
    return merged


def test_no_import_circle_between_modules() -> None:
    """No module imports, directly or through others, a module that imports it back."""
    circles = _circles(_import_graph())
    assert not circles, f"import circles: {[sorted(c) for c in circles]}"


@pytest.mark.parametrize("depth", [2, 3])
def test_no_import_circle_between_packages(depth: int) -> None:
    """Packages (phe_trace.X, then phe_trace.X.Y) form no circle either: with every module
    merged into its package at that depth, no cycle passes through a package (cycles of
    plain modules are the test above's)."""
    graph = _import_graph()
    packages = {
        name for name in graph if (SRC / Path(*name.split(".")[1:]) / "__init__.py").exists()
    }
    circles = [c for c in _circles(_collapsed(graph, depth)) if c & packages]
    assert not circles, f"import circles between packages: {[sorted(c) for c in circles]}"


#: Where each role's SQL lives: its storage modules (statements), its tables and its
#: database module (engine, migrations). Every other module of the role is a domain module.
STORAGE_MODULES = {
    "server": ("server/storage/", "server/migrations/"),
    "verification": (
        "verification/storage/",
        "verification/migrations/",
        "verification/tables.py",
        "verification/database.py",
    ),
    "aggregator": ("aggregator/storage.py", "aggregator/queries.py", "aggregator/migrations/"),
    "gateway": (
        "gateway/queries.py",
        "gateway/tables.py",
        "gateway/database.py",
        "gateway/migrations/",
    ),
}
#: What a domain module may take from SQLAlchemy: the connection and engine types it
#: passes to storage functions, and the errors it turns into domain errors.
SQLALCHEMY_NAMES_OF_DOMAIN = {"Connection", "Engine", "Row", "exc"}
#: Calls that run a statement (SQLAlchemy, DBAPI and the driver's COPY).
STATEMENT_CALLS = {"execute", "executemany", "executescript", "exec_driver_sql", "cursor"}


def _domain_modules() -> list[Path]:
    out = []
    for role, storage in STORAGE_MODULES.items():
        for path in sorted((SRC / role).rglob("*.py")):
            relative = path.relative_to(SRC).as_posix()
            if not relative.startswith(storage):
                out.append(path)
    return out


def _sql_in(source: str, package: str) -> list[str]:
    """What in ``source`` (a module of ``package``) builds or runs SQL: a SQLAlchemy name
    beyond the types and errors (statement constructors such as select, insert, update,
    delete, text, func, or the dialects' inserts), an import of a tables module (a Table
    builds its own statements: ``table.insert()``), or a call that runs a statement on a
    connection or cursor."""
    tree = ast.parse(source)
    found: list[str] = []
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sqlalchemy":
                    aliases.add(alias.asname or alias.name)
                elif alias.name.startswith("sqlalchemy.") and alias.name != "sqlalchemy.exc":
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module]).rstrip(".")
            names = [a.name for a in node.names]
            if module == "sqlalchemy" or module.startswith("sqlalchemy."):
                allowed = module in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.exc")
                bad = [n for n in names if module != "sqlalchemy.exc"]
                bad = [n for n in bad if not allowed or n not in SQLALCHEMY_NAMES_OF_DOMAIN]
                found.extend(f"line {node.lineno}: from {module} import {n}" for n in bad)
            tables = [n for n in [*module.split("."), *names] if n.endswith("tables")]
            if module.startswith("phe_trace.") and tables:
                found.append(f"line {node.lineno}: imports tables from {module}")
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in aliases:
                if node.attr not in SQLALCHEMY_NAMES_OF_DOMAIN:
                    found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in STATEMENT_CALLS:
                found.append(f"line {node.lineno}: .{node.func.attr}(…)")
    return found


@pytest.mark.parametrize("path", _domain_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_domain_modules_build_and_run_no_sql(path: Path) -> None:
    """The SQL of the key server, the verification service, the aggregator and the gateway
    lives in their storage modules (``server/storage/``, ``verification/storage/``,
    ``aggregator/queries.py``, ``gateway/queries.py``, beside tables, database and
    migrations): a domain
    module calls named storage functions on a connection it opened, and neither builds a
    statement nor runs one."""
    package = ".".join(("phe_trace", *path.relative_to(SRC).parts[:-1]))
    found = _sql_in(path.read_text(), package)
    assert not found, f"{path.relative_to(SRC)} builds or runs SQL: {found}"


def test_the_sql_rule_sees_a_statement_put_back() -> None:
    """The rule above catches each way a statement could come back into a domain module."""
    samples = {
        "import sqlalchemy as sa\nq = sa.select(1)\n": "sa.select",
        "from sqlalchemy import select\n": "import select",
        "from sqlalchemy.dialects import postgresql\n": "import postgresql",
        "from .storage.tables import exposures\n": "imports tables",
        "from . import tables\n": "imports tables",
        "def f(conn):\n    conn.exec_driver_sql('DELETE FROM ks_exposures')\n": "exec_driver_sql",
        "def f(conn, q):\n    return conn.execute(q)\n": ".execute",
        "from sqlalchemy import Engine\nfrom sqlalchemy.exc import IntegrityError\n": "",
    }
    for source, expected in samples.items():
        found = " ".join(_sql_in(source, "phe_trace.server"))
        assert (expected in found) if expected else not found, (source, found)


# The exception tree (phe_trace/errors.py): one tree, unique names, drawn whole.


def _class_statements() -> list[tuple[Path, str, ast.ClassDef]]:
    """``(file, qualified name, statement)`` of every class statement in phe_trace; a class
    defined inside a function gets the qualified name ``<function>.<name>``."""
    found: list[tuple[Path, str, ast.ClassDef]] = []

    def visit(path: Path, node: ast.AST, prefix: str, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                name = f"{prefix}{child.name}"
                found.append((path, f"<function>.{name}" if in_function else name, child))
                visit(path, child, f"{name}.", in_function)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(path, child, f"{prefix}{child.name}.", True)
            else:
                visit(path, child, prefix, in_function)

    for path in _source_files():
        visit(path, ast.parse(path.read_text(), str(path)), "", False)
    return found


def _exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in phe_trace's source (each module with a class
    statement is imported; a class statement inside a function must not be an exception)."""
    classes: list[type[BaseException]] = []
    for path, qualname, node in _class_statements():
        if qualname.startswith("<function>."):
            bases = [ast.unparse(b) for b in node.bases]
            assert not any(b.endswith(("Error", "Exception")) for b in bases), (
                f"{path.relative_to(SRC)}: exception class {node.name} defined in a function"
            )
            continue
        obj: object = importlib.import_module(_module_name(path))
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            classes.append(obj)
    return classes


def test_no_two_exception_classes_share_a_name() -> None:
    """One name, one error: ``except ConfigError`` never means three different things."""
    by_name: dict[str, list[str]] = {}
    for cls in _exception_classes():
        by_name.setdefault(cls.__name__, []).append(f"{cls.__module__}.{cls.__qualname__}")
    shared = {name: where for name, where in by_name.items() if len(where) > 1}
    assert not shared, f"exception classes sharing a name: {shared}"


def test_every_exception_class_is_in_the_tree() -> None:
    """Every exception class of phe_trace derives from PheTraceError, except private control
    flow of one module: a ``_``-named class that no other source file mentions."""
    sources = {p: p.read_text() for p in _source_files()}
    outside = []
    for cls in _exception_classes():
        if issubclass(cls, PheTraceError):
            continue
        home = SRC / Path(*cls.__module__.split(".")[1:])
        home = home / "__init__.py" if home.is_dir() else home.with_suffix(".py")
        private = cls.__name__.startswith("_") and not any(
            re.search(rf"\b{cls.__name__}\b", text) for p, text in sources.items() if p != home
        )
        if not private:
            outside.append(f"{cls.__module__}.{cls.__qualname__}")
    assert not outside, f"exception classes outside the PheTraceError tree: {outside}"


_TREE_LINE = re.compile(
    r"^(?P<prefix>[│├└─ ]*)(?P<name>\w+) +(?P<code>\w+)(?:  \[(?P<module>[\w.]+)\])?$"
)


def _drawn_tree() -> dict[str, tuple[str | None, str, str | None]]:
    """The tree in phe_trace/errors.py's docstring: name → (parent, code, module named)."""
    doc = errors_module.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    drawn: dict[str, tuple[str | None, str, str | None]] = {}
    parents: list[str] = []
    for line in block.splitlines():
        match = _TREE_LINE.match(line.removeprefix("    "))
        assert match, f"cannot read this line of the drawn tree: {line!r}"
        depth = len(match["prefix"]) // 4
        del parents[depth:]
        name = match["name"]
        assert name not in drawn, f"{name} is drawn twice"
        assert len(parents) == depth, f"{name} is drawn deeper than its parent"
        drawn[name] = (parents[-1] if parents else None, match["code"], match["module"])
        parents.append(name)
    return drawn


def test_the_docstring_draws_the_whole_tree() -> None:
    """phe_trace/errors.py draws exactly the classes that exist: each under its parent, with
    its code, and the module of each class that lives elsewhere than its parent."""
    actual: dict[str, tuple[str | None, str, str | None]] = {}
    for cls in _exception_classes():
        if not issubclass(cls, PheTraceError):
            continue
        parent = next((b for b in cls.__bases__ if issubclass(b, PheTraceError)), None)
        moved = parent is None or parent.__module__ != cls.__module__
        module = cls.__module__.removeprefix("phe_trace.") if moved else None
        actual[cls.__name__] = (parent.__name__ if parent else None, cls.code, module)
    drawn = _drawn_tree()
    missing = sorted(set(actual) - set(drawn))
    extra = sorted(set(drawn) - set(actual))
    assert not missing, f"not drawn in phe_trace/errors.py: {missing}"
    assert not extra, f"drawn in phe_trace/errors.py but not a class: {extra}"
    wrong = {n: (drawn[n], actual[n]) for n in actual if drawn[n] != actual[n]}
    assert not wrong, f"drawn (parent, code, module) differ from the code's: {wrong}"


#: Built-in exceptions raised on purpose outside the rules below, each a programming error
#: on internal misuse that no user, operator or peer input reaches: (function, exception)
#: → why. A user's, an operator's or a peer's mistake is a PheTraceError with a code.
BUILTIN_RAISES = {
    ("Cutoff.at", "ValueError"): "retention_days is validated to 1..14 by the agent's settings",
    ("TurboShake128.__init__", "ValueError"): "the domain byte is a constant of the caller",
    ("LibCrypto.new_aes_context", "OSError"): "libcrypto failing; its loader's self-test "
    "catches it and the portable path is used",
    ("LibCrypto._aes", "OSError"): "as above: libcrypto failing after loading",
    ("create_app", "ValueError"): "a caller passing neither settings nor a gateway",
    ("Registry.add", "ValueError"): "a metric registered twice by the code",
    ("plan_batches", "ValueError"): "export_period_seconds is validated to divide 86400",
    ("RevisionKeyRing.__init__", "ValueError"): "the keys are validated by the settings",
    ("ManualClock.__init__", "ValueError"): "a naive datetime from a test or the simulator",
    ("ManualClock.set", "ValueError"): "a naive datetime from a test or the simulator",
    ("run_environment", "RuntimeError"): "Alembic run without the connection migrate() "
    "always passes",
    ("SigningKeys._unseal", "TypeError"): "a sealed key that only this service writes",
    ("SigningKeys.active", "LookupError"): "the service makes an active key at start-up and "
    "rotation replaces it in one transaction",
    ("DiagnosisKeyColumns.__init__.column", "ValueError"): "columns of unequal lengths from "
    "the code that builds them (the export reader, take, concat)",
}
#: Built-in exceptions that are Python's own protocols, wherever they are raised:
#: ``AttributeError`` from a module ``__getattr__``, ``IndexError`` from ``__getitem__``.
_PROTOCOL_RAISES = {("__getattr__", "AttributeError"), ("__getitem__", "IndexError")}
#: Raised anywhere: an abstract method, a signal handler, an unreachable line.
_ANYWHERE = {"NotImplementedError", "KeyboardInterrupt", "AssertionError"}
_VALIDATORS = ("field_validator", "model_validator")


def _builtin_raises() -> list[tuple[Path, str, str]]:
    """``(file, function, exception)`` of each ``raise`` of a built-in exception outside a
    pydantic validator (a decorated one, or a function given to ``BeforeValidator`` & co)."""
    found: list[tuple[Path, str, str]] = []
    for path in _source_files():
        tree = ast.parse(path.read_text(), str(path))
        wrapped = {
            arg.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("Validator")
            for arg in node.args
            if isinstance(arg, ast.Name)
        }

        def visit(node: ast.AST, function: str, validator: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    name = f"{function}.{child.name}" if function else child.name
                    decorators = [ast.unparse(d) for d in child.decorator_list]
                    is_validator = child.name in wrapped or any(
                        d.startswith(_VALIDATORS) for d in decorators
                    )
                    visit(child, name, is_validator)
                    continue
                if isinstance(child, ast.Raise) and child.exc is not None:
                    exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                    builtin = isinstance(exc, ast.Name) and isinstance(
                        getattr(builtins, exc.id, None), type
                    )
                    if builtin and not (validator and exc.id == "ValueError"):
                        found.append((path, function, exc.id))
                visit(child, function, validator)

        visit(tree, "", False)
    return found


def test_built_in_exceptions_are_raised_only_where_allowed() -> None:
    """A built-in exception is raised on purpose only in a pydantic validator (pydantic names
    the field), as a Python protocol, or for internal misuse listed in BUILTIN_RAISES."""
    seen: set[tuple[str, str]] = set()
    stray = []
    for path, function, exc in _builtin_raises():
        key = (function, exc)
        if exc in _ANYWHERE or (function.rpartition(".")[2], exc) in _PROTOCOL_RAISES:
            continue
        if key in BUILTIN_RAISES:
            seen.add(key)
            continue
        stray.append(f"{path.relative_to(SRC)}: {function or '<module>'} raises {exc}")
    assert not stray, f"built-in exceptions a caller may meet; raise a PheTraceError: {stray}"
    stale = sorted(set(BUILTIN_RAISES) - seen)
    assert not stale, f"BUILTIN_RAISES lists raises that are gone: {stale}"


def test_placeholder_secrets_and_clocks_are_defined_once() -> None:
    """The infrastructure every role needs is not copied per role: the one list of
    placeholder secrets is ``phe_trace.settings.PLACEHOLDER_SECRETS`` and the one clock
    module ``phe_trace.clock`` (no other module lists "changeme" or defines a clock
    class or the system clock)."""
    own = {SRC / "settings.py": "placeholders", SRC / "clock.py": "clocks"}
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        if path in own:
            continue
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(SRC)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == "changeme":
                found.append(f"{where}:{node.lineno} lists placeholder secrets")
            if isinstance(node, ast.ClassDef) and node.name.endswith("Clock"):
                found.append(f"{where}:{node.lineno} defines a clock class {node.name}")
            if isinstance(node, ast.FunctionDef) and node.name == "system_clock":
                found.append(f"{where}:{node.lineno} defines system_clock")
    assert not found, found


def test_tests_drive_time_with_the_product_clocks() -> None:
    """Tests set time through ``phe_trace.clock`` (``SettableClock``, ``ManualClock``,
    ``system_clock``) like the simulator does; no test module defines a clock class."""
    tests = Path(__file__).resolve().parent
    found = [
        f"{path.relative_to(tests)}:{node.lineno} defines a clock class {node.name}"
        for path in sorted(tests.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ClassDef) and node.name.endswith("Clock")
    ]
    assert not found, found


def _errors_modules() -> list[str]:
    return sorted(
        _module_name(p) for p in _source_files() if p.name == "errors.py" and p.parent != SRC
    )


@pytest.mark.parametrize("module", _errors_modules())
def test_each_errors_module_draws_its_own_branch(module: str) -> None:
    """A part's ``errors`` module draws its branch (with what each class means): every class
    it defines, each under its parent, and no class that is not there."""
    mod = importlib.import_module(module)
    defined = {
        obj.__name__: obj
        for obj in vars(mod).values()
        if isinstance(obj, type) and issubclass(obj, PheTraceError) and obj.__module__ == module
    }
    if not defined:
        return  # an errors module of answers, not of classes (phe_trace.web.errors)
    doc = mod.__doc__ or ""
    assert "::\n\n" in doc, f"{module} draws no tree"
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    drawn: dict[str, str | None] = {}
    parents: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^ {4}(?P<prefix>[│├└─ ]*)(?P<name>\w+)", line)
        if match is None or not match["name"][0].isupper():
            continue  # a description continued on the next line
        depth = len(match["prefix"]) // 4
        del parents[depth:]
        drawn[match["name"]] = parents[-1] if parents else None
        parents.append(match["name"])
    missing = sorted(set(defined) - set(drawn))
    assert not missing, f"{module} does not draw {missing}"
    for name, parent in drawn.items():
        cls = defined.get(name)
        if cls is None:
            assert name == "PheTraceError" or parent is None, f"{module} draws {name}"
            continue
        actual = next(b for b in cls.__bases__ if issubclass(b, PheTraceError)).__name__
        assert parent in (actual, None), f"{module} draws {name} under {parent}, not {actual}"
