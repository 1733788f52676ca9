"""The scanned tree as modules: names, imports, functions, and how a call's target is named.

Nothing here imports or runs the scanned code. Files are parsed on demand and cached, so a check of
one file parses that file and only the modules of the tree it needs (imports it follows, callers
it looks for).
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from genaitrace_check.config import CheckConfig


@dataclass
class Function:
    qualname: str                  # module.func or module.Class.method
    node: ast.FunctionDef | ast.AsyncFunctionDef
    module: "Module"
    cls: str | None = None         # enclosing class name, for `self.x()`

    # `x = expr`, `with expr as x`: every binding of a local name, with its line
    bindings: dict[str, list[tuple[int, ast.expr]]] = field(default_factory=dict)

    def bind(self, name: str, node: ast.AST, value: ast.expr) -> None:
        self.bindings.setdefault(name, []).append((node.lineno, value))

    def value_at(self, name: str, line: int) -> ast.expr | None:
        """The binding of `name` in force at `line`: the last one above it (else the first one)."""
        bindings = self.bindings.get(name)
        if not bindings:
            return None
        above = [(bound_at, value) for bound_at, value in bindings if bound_at <= line]
        return max(above, key=lambda b: b[0])[1] if above else min(bindings, key=lambda b: b[0])[1]


@dataclass
class Module:
    name: str
    path: Path
    relpath: str
    tree: ast.Module
    source: str
    imports: dict[str, str] = field(default_factory=dict)       # local name -> qualified name
    constants: dict[str, ast.expr] = field(default_factory=dict)  # module-level NAME = expr
    functions: dict[str, Function] = field(default_factory=dict)  # qualname -> Function
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)
    call_index: dict[str, list] | None = None
    scopes: dict[int, "Function"] = field(default_factory=dict)  # id(def node) -> its Function
    callees: dict[int, str | None] = field(default_factory=dict)  # id(call) -> qualified callee
    classes: set[str] = field(default_factory=set)  # top-level class names
    calls: list[tuple[ast.Call, "Function | None"]] = field(default_factory=list)
    assigns: list[tuple[ast.Assign, "Function | None"]] = field(default_factory=list)

    @cached_property
    def lines(self) -> list[str]:
        return self.source.splitlines()

    @cached_property
    def imported_modules(self) -> set[str]:
        return set(self.imports.values())

    @cached_property
    def top_imports(self) -> set[str]:
        """Top-level packages the module imports (`requests` for `requests.adapters`)."""
        return {name.split(".")[0] for name in self.imported_modules}


def python_files(top: Path, config: CheckConfig) -> list[Path]:
    """The .py files below `top` that the config does not exclude."""
    found = []
    for folder, dirs, names in os.walk(top):
        rel = os.path.relpath(folder, config.root)
        dirs[:] = sorted(d for d in dirs if not config.excluded(os.path.normpath(os.path.join(rel, d))))
        found.extend(Path(folder) / n for n in sorted(names) if n.endswith(".py"))
    return found


def walk_own(node: ast.AST):
    """ast.walk that does not enter nested functions, classes or lambdas (their own scopes)."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        yield child
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(child))


def dotted(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        base = dotted(expr.value)
        return f"{base}.{expr.attr}" if base else None
    return None


class Project:
    def __init__(self, config: CheckConfig, tree_paths: list[Path] | None = None):
        self.config = config
        self.root = config.root
        self.tree_paths = tree_paths or [config.root]  # where callers and modules are looked for
        self._modules: dict[Path, Module | None] = {}
        self._texts: dict[Path, str] | None = None
        self._returns: dict[str, str | None] = {}
        self._reexports: dict[str, str] = {}
        self._words: dict[str, list[Path]] | None = None

    # -- the tree ------------------------------------------------------------------------------------

    @cached_property
    def files(self) -> list[Path]:
        """Every .py file under the root that the config does not exclude (names only, not read)."""
        found = []
        for top in self.tree_paths:
            found.extend(self._walk(top))
        return sorted(set(found))

    def _walk(self, top: Path) -> list[Path]:
        return [top] if top.is_file() else python_files(top, self.config)

    @cached_property
    def module_paths(self) -> dict[str, Path]:
        index: dict[str, Path] = {}
        for path in self.files:
            for name in self.module_names(path):
                index.setdefault(name, path)
        return index

    def module_names(self, path: Path) -> list[str]:
        try:
            rel = path.resolve().relative_to(self.root.resolve())
        except ValueError:
            return [path.stem]
        parts = list(rel.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts = parts[:-1]
        names = [".".join(parts)] if parts else []
        if len(parts) > 1 and parts[0] in ("src", "lib"):
            names.append(".".join(parts[1:]))
        return names

    def relpath(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()

    def text(self, path: Path) -> str:
        if self._texts is not None and path in self._texts:
            return self._texts[path]
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def texts_containing(self, needle: str) -> list[Path]:
        """Files of the tree whose text contains `needle` (a cheap filter before parsing). An
        identifier is looked up in an index of the tree's words, built once."""
        if self._texts is None:
            self._texts = {path: self.text(path) for path in self.files}
        if not _IDENTIFIER.fullmatch(needle):
            return [path for path, text in self._texts.items() if needle in text]
        if self._words is None:
            self._words = {}
            for path, text in self._texts.items():
                for word in set(_IDENTIFIER.findall(text)):
                    self._words.setdefault(word, []).append(path)
        return self._words.get(needle, [])

    # -- parsing -------------------------------------------------------------------------------------

    def module(self, path: Path) -> Module | None:
        if path not in self._modules:
            self._modules[path] = self._parse(path)
        return self._modules[path]

    def module_named(self, name: str) -> Module | None:
        path = self.module_paths.get(name)
        return self.module(path) if path else None

    def _parse(self, path: Path) -> Module | None:
        source = self.text(path)
        try:
            tree = ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError, RecursionError):
            return None
        names = self.module_names(path)
        module = Module(names[0] if names else path.stem, path, self.relpath(path), tree, source)
        self._collect_definitions(module)
        self._index(module, path.name == "__init__.py")
        return module

    def _index(self, module: Module, is_package: bool) -> None:
        """One pass over the module: parents, imports, every call and assignment with the function it
        runs in, and each function's simple local bindings."""
        imports: list[ast.Import | ast.ImportFrom] = []
        stack: list[tuple[ast.AST, Function | None]] = [(module.tree, None)]
        parents = module.parents
        while stack:
            node, function = stack.pop()
            for child in ast.iter_child_nodes(node):
                parents[child] = node
                scope = function
                kind = type(child)
                if kind is ast.Call:
                    module.calls.append((child, function))
                elif kind is ast.Assign:
                    module.assigns.append((child, function))
                    if function is not None and len(child.targets) == 1 and type(child.targets[0]) is ast.Name:
                        function.bind(child.targets[0].id, child, child.value)
                elif kind is ast.AnnAssign:
                    if function is not None and type(child.target) is ast.Name and child.value is not None:
                        function.bind(child.target.id, child, child.value)
                elif kind is ast.With or kind is ast.AsyncWith:
                    if function is not None:
                        for item in child.items:
                            if type(item.optional_vars) is ast.Name:
                                function.bind(item.optional_vars.id, child, item.context_expr)
                elif kind is ast.Import or kind is ast.ImportFrom:
                    imports.append(child)
                elif kind is ast.FunctionDef or kind is ast.AsyncFunctionDef:
                    owner = node if isinstance(node, ast.ClassDef) else None
                    prefix = f"{module.name}.{owner.name}." if owner else f"{module.name}."
                    scope = module.functions.get(prefix + child.name) or Function(
                        prefix + child.name, child, module, owner.name if owner else None)
                    module.scopes[id(child)] = scope
                if kind is not ast.Constant and kind is not ast.Name:
                    stack.append((child, scope))
        self._collect_imports(module, is_package, imports)

    @staticmethod
    def _collect_imports(module: Module, is_package: bool, statements) -> None:
        package = module.name if is_package else module.name.rpartition(".")[0]
        for node in statements:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        module.imports[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        module.imports.setdefault(top, top)
                        module.imports.setdefault(alias.name, alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".") if package else []
                    anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    if alias.name != "*":
                        module.imports[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name

    @staticmethod
    def _collect_definitions(module: Module) -> None:
        for node in module.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                module.functions[f"{module.name}.{node.name}"] = Function(f"{module.name}.{node.name}", node, module)
            elif isinstance(node, ast.ClassDef):
                module.classes.add(node.name)
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        qualname = f"{module.name}.{node.name}.{item.name}"
                        module.functions[qualname] = Function(qualname, item, module, node.name)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                module.constants[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                module.constants[node.target.id] = node.value

    # -- naming a call's target ----------------------------------------------------------------------

    @staticmethod
    def enclosing_function(module: Module, node: ast.AST) -> Function | None:
        current = module.parents.get(node)
        while current is not None:
            if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return module.scopes.get(id(current))
            current = module.parents.get(current)
        return None

    def callee(self, module: Module, call: ast.Call, function: Function | None) -> str | None:
        """The qualified name of what `call` calls, worked out once per call."""
        key = id(call)
        if key not in module.callees:
            module.callees[key] = self.qualify(call.func, module, function)
        return module.callees[key]

    def qualify(self, expr: ast.expr, module: Module, function: Function | None, depth: int = 0) -> str | None:
        """The qualified name of what `expr` denotes: `openai.OpenAI().chat.completions.create`."""
        if depth > 12:
            return None
        if isinstance(expr, ast.Name):
            return self._qualify_name(expr.id, expr.lineno, module, function, depth)
        if isinstance(expr, ast.Attribute):
            if isinstance(expr.value, ast.Name) and expr.value.id == "self" and function is not None and function.cls:
                return f"{module.name}.{function.cls}().{expr.attr}"
            base = self.qualify(expr.value, module, function, depth + 1)
            return f"{base}.{expr.attr}" if base else None
        if isinstance(expr, ast.Call):
            callee = self.qualify(expr.func, module, function, depth + 1)
            if callee is None:
                return None
            if callee.rsplit(".", 1)[-1] == "partial" and callee.startswith("functools") and expr.args:
                return self.qualify(expr.args[0], module, function, depth + 1)  # partial(f, ...) is f
            returned = self._returned_value(callee, depth)
            return returned or f"{callee}()"
        if isinstance(expr, ast.Await):
            return self.qualify(expr.value, module, function, depth + 1)
        return None

    def _qualify_name(self, name: str, line: int, module: Module, function: Function | None,
                      depth: int) -> str | None:
        if function is not None:
            value = function.value_at(name, line)
            if value is not None:
                return self.qualify(value, module, function, depth + 1)
            args = function.node.args
            if name in {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}:
                return None  # a parameter: its value comes from the caller
        if name in module.imports:
            return self._follow_reexport(module.imports[name], depth)
        if f"{module.name}.{name}" in module.functions:
            return f"{module.name}.{name}"
        if name in module.constants:
            value = module.constants[name]
            if isinstance(value, (ast.Call, ast.Name, ast.Attribute)):
                return self.qualify(value, module, None, depth + 1)
            return None
        if name in module.classes:
            return f"{module.name}.{name}"
        return name if name in _BUILTIN_NAMES else None

    def _follow_reexport(self, qualified: str, depth: int) -> str:
        """`from pkg import ask` where pkg/__init__.py re-exports `ask` from pkg.core: pkg.core.ask."""
        if qualified not in self._reexports:
            self._reexports[qualified] = qualified  # cycle guard
            head, _, last = qualified.rpartition(".")
            package = self.module_named(head) if head and depth <= 8 else None
            result = qualified
            if package is not None and f"{head}.{last}" not in package.functions \
                    and last in package.imports and package.imports[last] != qualified:
                result = self._follow_reexport(package.imports[last], depth + 1)
            self._reexports[qualified] = result
        return self._reexports[qualified]

    def _returned_value(self, callee: str, depth: int) -> str | None:
        """A factory of the tree (`def client(): return OpenAI()`) names what it returns."""
        if callee in self._returns:
            return self._returns[callee]
        self._returns[callee] = None  # cycle guard
        function = self.function(callee)
        result = None
        if function is not None and depth <= 6:
            for node in walk_own(function.node):
                if isinstance(node, ast.Return) and node.value is not None:
                    value = self.qualify(node.value, function.module, function, depth + 1)
                    if value and value.endswith("()"):
                        result = value
                        break
        self._returns[callee] = result
        return result

    def calls_named(self, module: Module, name: str) -> list[tuple[ast.Call, Function | None]]:
        """Calls in `module` whose callee, or one of whose arguments, ends in `name` (an index built
        once per module, so looking for the callers of many functions stays linear)."""
        if module.call_index is None:
            index: dict[str, list] = {}
            for node, caller in module.calls:
                if True:
                    for expr in (node.func, *node.args, *(k.value for k in node.keywords)):
                        last = expr.id if isinstance(expr, ast.Name) else expr.attr if isinstance(expr, ast.Attribute) else None
                        if last:
                            index.setdefault(last, []).append((node, caller))
            module.call_index = index
        return module.call_index.get(name, [])

    def function(self, qualname: str) -> Function | None:
        """The tree's function called `qualname` (`pkg.mod.f`, `pkg.mod.C.m`, or `pkg.mod.C().m`)."""
        qualname = qualname.replace("().", ".")
        module_name = qualname
        while "." in module_name:
            module_name = module_name.rpartition(".")[0]
            module = self.module_named(module_name)
            if module is not None:
                return module.functions.get(qualname)
        return None


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BUILTIN_NAMES = frozenset({"open", "exec", "eval", "print"})
