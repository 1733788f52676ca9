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
from operator import attrgetter
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
    call_index: dict[str, list] | None = None
    scopes: dict[int, "Function"] = field(default_factory=dict)  # id(def node) -> its Function
    callees: dict[int, str | None] = field(default_factory=dict)  # id(call) -> qualified callee
    classes: set[str] = field(default_factory=set)  # top-level class names
    calls: list[tuple[ast.Call, "Function | None"]] = field(default_factory=list)
    assigns: list[tuple[ast.Assign, "Function | None"]] = field(default_factory=list)

    def summary(self) -> "Summary":
        return Summary(frozenset(self.functions), dict(self.imports))

    @cached_property
    def parents(self) -> dict[ast.AST, ast.AST]:
        """Each node's parent (leaves aside: lookups go from calls upwards). Built on first use: only
        the few modules whose calls' surroundings are looked at need it."""
        parents = {}
        stack: list[ast.AST] = [self.tree]
        while stack:
            node = stack.pop()
            for child in _child_nodes(node):
                if type(child) is not ast.Name and type(child) is not ast.Constant:
                    parents[child] = node
                    stack.append(child)
        return parents

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


@dataclass(frozen=True)
class Summary:
    """What naming a call needs from another module without its tree: the functions it defines and the
    names it imports (a re-export is followed through these). Worker processes trade summaries of the
    modules they parsed, so a package's `__init__` is parsed by one worker, not by all."""
    functions: frozenset[str]     # as Module.functions' keys
    imports: dict[str, str]


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
    stack = _child_nodes(node)
    while stack:
        child = stack.pop()
        yield child
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(_child_nodes(child))


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
        self._word_searches = 0
        self._import_words: dict[Path, frozenset[str]] = {}
        self._resolved: dict[Path, Path] = {}
        self.summaries: dict[str, Summary | None] = {}  # resolved path -> modules parsed elsewhere (None: unparseable)

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
            rel = self._resolve(path).relative_to(self._resolve(self.root))
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
            return self._resolve(path).relative_to(self._resolve(self.root)).as_posix()
        except ValueError:
            return path.as_posix()

    def _resolve(self, path: Path) -> Path:
        """path.resolve(), with each folder resolved once: resolve() stats every folder on the way, and
        did so for each of thousands of files."""
        resolved = self._resolved.get(path)
        if resolved is None:
            if path.name in ("", ".", "..") or path.is_symlink():
                resolved = path.resolve()
            else:
                resolved = self._resolve(path.parent) / path.name
            self._resolved[path] = resolved
        return resolved

    def resolved_name(self, path: Path) -> str:
        """The path as the processes of one check agree on it."""
        return str(self._resolve(path))

    def text(self, path: Path) -> str:
        if self._texts is not None and path in self._texts:
            return self._texts[path]
        module = self._modules.get(path)
        if module is not None:
            return module.source  # read once: parsed first, searched later
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def texts_containing(self, needle: str) -> list[Path]:
        """Files of the tree whose text contains `needle` (a cheap filter before parsing). An
        identifier is a word of _IDENTIFIER's: the first few are searched for, and from then on
        looked up in an index of the tree's words, built once (it costs as much as some twenty
        searches, and a check of one file makes only a few)."""
        if self._texts is None:
            self._texts = {path: self.text(path) for path in self.files}
        if not _IDENTIFIER.fullmatch(needle):
            return [path for path, text in self._texts.items() if needle in text]
        if self._words is None and self._word_searches < WORD_SEARCHES_BEFORE_INDEX:
            self._word_searches += 1
            word = re.compile(rf"(?<![A-Za-z0-9_])[0-9]*{needle}(?![A-Za-z0-9_])")  # as findall splits words
            return [path for path, text in self._texts.items() if needle in text and word.search(text)]
        if self._words is None:
            self._words = {}
            for path, text in self._texts.items():
                for word in set(_IDENTIFIER.findall(text)):
                    self._words.setdefault(word, []).append(path)
        return self._words.get(needle, [])

    def imports_word(self, path: Path, word: str) -> bool:
        """Whether a `from`/`import` line of the file names `word` (as a whole word): a text test, so
        files that cannot import a module are never parsed. The words of each file's import lines are
        collected once: one regex search per file and function made this a fifth of a large check."""
        if not _WORD.fullmatch(word):
            pattern = rf"^[ \t]*(?:from|import)[ \t][^\n]*\b{re.escape(word)}\b"
            return re.search(pattern, self.text(path), re.MULTILINE) is not None
        words = self._import_words.get(path)
        if words is None:
            lines = _IMPORT_LINE.findall(self.text(path))
            words = self._import_words[path] = frozenset(w for line in lines for w in _WORD.findall(line))
        return word in words

    # -- parsing -------------------------------------------------------------------------------------

    def module(self, path: Path) -> Module | None:
        if path not in self._modules:
            self._modules[path] = self._parse(path)
        return self._modules[path]

    def module_named(self, name: str) -> Module | None:
        path = self.module_paths.get(name)
        return self.module(path) if path else None

    def names_of(self, name: str) -> Module | Summary | None:
        """The module called `name`, or only its summary where another worker parsed it."""
        path = self.module_paths.get(name)
        if path is None:
            return None
        if path not in self._modules:
            resolved = self.resolved_name(path)
            if resolved in self.summaries:
                return self.summaries[resolved]
        return self.module(path)

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
        """One pass over the module: imports, every call and assignment with the function it runs in,
        and each function's simple local bindings."""
        imports: list[ast.Import | ast.ImportFrom] = []
        stack: list[tuple[ast.AST, Function | None]] = [(module.tree, None)]
        while stack:
            node, function = stack.pop()
            for child in _child_nodes(node):
                kind = type(child)
                if kind is ast.Name or kind is ast.Constant:
                    continue  # the commonest nodes, and leaves
                scope = function
                if kind in _INDEXED:
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
                    else:
                        scope = self._scope(module, node, child)
                stack.append((child, scope))
        self._collect_imports(module, is_package, imports)

    @staticmethod
    def _scope(module: Module, parent: ast.AST, definition: ast.FunctionDef | ast.AsyncFunctionDef) -> Function:
        owner = parent if isinstance(parent, ast.ClassDef) else None
        prefix = f"{module.name}.{owner.name}." if owner else f"{module.name}."
        scope = module.functions.get(prefix + definition.name) or Function(
            prefix + definition.name, definition, module, owner.name if owner else None)
        module.scopes[id(definition)] = scope
        return scope

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
            package = self.names_of(head) if head and depth <= 8 else None
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
            names = self.names_of(module_name)
            if names is not None:
                # A summary answers "no such function" without parsing the module.
                return self.module_named(module_name).functions.get(qualname) if qualname in names.functions else None
        return None


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WORD_SEARCHES_BEFORE_INDEX = 4
_WORD = re.compile(r"\w+")  # a word as the regex `\b` sees it (Unicode)
_IMPORT_LINE = re.compile(r"^[ \t]*(?:from|import)[ \t]([^\n]*)", re.MULTILINE)  # what follows the keyword
# Fields that never hold a node worth visiting: names, flags, and the shared singletons of contexts and
# operators (ast.Load(), ast.Add(), ...). Skipping them is most of what makes the index pass cheap.
_LEAF_FIELDS = frozenset({"ctx", "op", "ops", "id", "attr", "name", "asname", "module", "level", "arg",
                          "kind", "conversion", "is_async", "type_comment", "tag", "rest",
                          "names", "kwd_attrs"})  # import aliases or strings
_FIELD_READERS: dict[type, object] = {}
# The node types the index records something for.
_INDEXED = frozenset({ast.Call, ast.Assign, ast.AnnAssign, ast.With, ast.AsyncWith, ast.Import, ast.ImportFrom,
                      ast.FunctionDef, ast.AsyncFunctionDef})


def _child_nodes(node: ast.AST) -> list[ast.AST]:
    """ast.iter_child_nodes, in the same order, as a list, without the leaves of _LEAF_FIELDS."""
    read = _FIELD_READERS.get(type(node))
    if read is None:
        read = _FIELD_READERS[type(node)] = _field_reader(type(node))
    children: list[ast.AST] = []
    for value in read(node):
        if type(value) is list:
            children += [item for item in value if item is not None]  # dict keys, kw_defaults: None
        elif isinstance(value, ast.AST):
            children.append(value)
    return children


def _field_reader(kind: type):
    """The fields of a node type that can hold nodes, all read in one call."""
    names = [name for name in kind._fields if name not in _LEAF_FIELDS]
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        read_one = attrgetter(names[0])
        return lambda node: (read_one(node),)
    return lambda node: ()
_BUILTIN_NAMES = frozenset({"open", "exec", "eval", "print"})
