"""The rules, applied to one module at a time over the shared `Project`."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from genaitrace_check import catalog
from genaitrace_check.config import matches
from genaitrace_check.project import Function, Module, Project, dotted, walk_own
from genaitrace_check.rules import RULES


@dataclass(frozen=True)
class Finding:
    rule: str
    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    message: str

    @property
    def fix(self) -> str:
        return RULES[self.rule].fix


_PATTERN_SETS: dict[int, frozenset] = {}
_SDK_BY_CONSTRUCTOR = {constructor: library for library, constructors in catalog.SDK_CLIENTS.items()
                       for constructor in constructors}


def _like(name: str | None, patterns) -> bool:
    """`name` is one of `patterns` (qualified names; a set is built once per pattern list)."""
    if name is None:
        return False
    exact = _PATTERN_SETS.get(id(patterns))
    if exact is None:
        exact = _PATTERN_SETS[id(patterns)] = frozenset(patterns)
    return name in exact


def _literal_text(expr: ast.expr, module: Module, depth: int = 0) -> str:
    """What a URL expression is known to contain: literals, f-string parts, `+`, module constants."""
    if depth > 5 or expr is None:
        return ""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.JoinedStr):
        return "".join(_literal_text(v, module, depth + 1) if not isinstance(v, ast.FormattedValue)
                       else _literal_text(v.value, module, depth + 1) for v in expr.values)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Mod)):
        return _literal_text(expr.left, module, depth + 1) + _literal_text(expr.right, module, depth + 1)
    if isinstance(expr, ast.Name) and expr.id in module.constants:
        return _literal_text(module.constants[expr.id], module, depth + 1)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr in ("format", "join"):
        return _literal_text(expr.func.value, module, depth + 1) + "".join(
            _literal_text(a, module, depth + 1) for a in expr.args)
    return ""


def _provider_host(text: str) -> str | None:
    lowered = text.lower()
    return next((host for host in catalog.PROVIDER_HOSTS if host in lowered), None)


def _env_assignments(node: ast.AST, module: Module, project: Project, function):
    """(variable, value expression) for `os.environ[K] = v`, `os.environ.setdefault/update`, `os.putenv`."""
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Subscript) and _is_environ(target.value, module, project, function):
                key = target.slice
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield key.value, node.value, target
    elif isinstance(node, ast.Call):
        name = project.callee(module, node, function)
        if name in ("os.environ.setdefault", "os.putenv", "os.environ.__setitem__") and len(node.args) >= 2:
            key = node.args[0]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                yield key.value, node.args[1], node
        elif name == "os.environ.update":
            for arg in node.args:
                if isinstance(arg, ast.Dict):
                    for key, value in zip(arg.keys, arg.values):
                        if isinstance(key, ast.Constant) and isinstance(key.value, str):
                            yield key.value, value, node
            for keyword in node.keywords:
                if keyword.arg:
                    yield keyword.arg, keyword.value, node


def _is_environ(expr: ast.expr, module: Module, project: Project, function) -> bool:
    return project.qualify(expr, module, function) == "os.environ"


def _const_str(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, (str, bool, int)):
        return str(expr.value).lower()
    return None


class Analyzer:
    """Checks modules of one project; caches what it learns about functions across modules."""

    def __init__(self, project: Project):
        self.project = project
        self.config = project.config
        self._reaches_work: dict[str, bool] = {}
        self._attribution: dict[str, tuple[str, list[str]]] = {}
        self._callers: dict[str, list[tuple[Module, ast.Call, Function | None]]] = {}
        self._bootstraps_in_code: bool | None = None
        self._setter_lines: dict[tuple, list[int]] = {}
        self._propagating: dict = {}
        self._bootstrapping: dict[str, bool] = {}

    # -- entry ---------------------------------------------------------------------------------------

    def check(self, module: Module) -> list[Finding]:
        rules = self.config.rules_for(module.relpath)
        findings: list[Finding] = []
        if "GT101" in rules:
            findings += self._gt101(module)
        if "GT102" in rules:
            findings += self._gt102(module)
        if "GT103" in rules:
            findings += self._gt103(module)
        if "GT104" in rules and not self._allowed(module, self.config.allow_tracing_overrides):
            findings += self._gt104(module)
        if "GT105" in rules and not self._allowed(module, self.config.capture_allowed):
            findings += self._gt105(module)
        if "GT106" in rules:
            findings += self._gt106(module)
        return sorted(set(findings), key=lambda f: (f.line, f.col, f.rule))

    @staticmethod
    def _allowed(module: Module, patterns) -> bool:
        return any(matches(module.relpath, p) for p in patterns)

    def _finding(self, rule: str, module: Module, node: ast.AST, message: str) -> Finding:
        return Finding(rule, module.relpath, node.lineno, node.col_offset + 1,
                       getattr(node, "end_lineno", node.lineno) or node.lineno,
                       (getattr(node, "end_col_offset", node.col_offset) or node.col_offset) + 1, message)

    @staticmethod
    def _calls(module: Module):
        return module.calls

    # -- GT101 ---------------------------------------------------------------------------------------

    def _gt101(self, module: Module) -> list[Finding]:
        findings = []
        for call, function in self._calls(module):
            name = self.project.callee(module, call, function)
            if _like(name, catalog.HTTP_CALLS) or self._untyped_http(call, name or "", module):
                shown = (name or dotted(call.func) or "request").replace("()", "")
                url = self._url_argument(call, name or "")
                host = _provider_host(_literal_text(url, module)) if url is not None else None
                if host:
                    findings.append(self._finding("GT101", module, call, f"raw HTTP call to `{host}` ({shown}): "
                                                                         "no GenAI span, model, tokens or cost"))
                continue
            if name is None:
                continue
            library = self._uninstrumented_sdk(name, call)
            if library:
                findings.append(self._finding("GT101", module, call,
                                              f"`{name.rstrip('()')}` client of `{library}`, which no enabled "
                                              "instrumentor covers: its calls leave no GenAI span"))
        return findings

    @staticmethod
    def _untyped_http(call: ast.Call, name: str, module: Module) -> bool:
        """`session.post(URL)` on a session we cannot type, in a module that imports an HTTP client.
        `get` is every mapping's method too, so it counts only on a receiver named like a client."""
        clients = {"requests", "httpx", "aiohttp", "urllib3"}
        if not isinstance(call.func, ast.Attribute) or call.func.attr not in catalog.HTTP_METHOD_NAMES:
            return False
        if name.startswith(("requests.", "httpx.", "aiohttp.", "urllib.")) or not module.top_imports & clients:
            return False
        if call.func.attr in ("get", "put", "patch", "urlopen"):
            receiver = (dotted(call.func.value) or "").lower()
            return any(word in receiver for word in ("session", "client", "http"))
        return True

    @staticmethod
    def _url_argument(call: ast.Call, name: str) -> ast.expr | None:
        for keyword in call.keywords:
            if keyword.arg in ("url", "host", "base_url", "str_or_url"):
                return keyword.value
        if not call.args:
            return None
        method_first = name.endswith(("request", ".stream", "aiohttp.request"))
        if method_first and len(call.args) > 1:
            return call.args[1]
        return call.args[0]

    def _uninstrumented_sdk(self, name: str, call: ast.Call) -> str | None:
        library = _SDK_BY_CONSTRUCTOR.get(name.removesuffix("()"))
        if library is None or library in self.config.instrumented:
            return None
        if library == "boto3":
            service = call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
            if service not in catalog.BOTO3_LLM_SERVICES:
                return None
        return library

    # -- work: LLM calls and agent runs ----------------------------------------------------------------

    def _work_name(self, call: ast.Call, module: Module, function: Function | None) -> str | None:
        name = self.project.callee(module, call, function)
        if _like(name, catalog.LLM_CALLS):
            return name.replace("()", "")
        if isinstance(call.func, ast.Attribute) and call.func.attr in catalog.AGENT_RUN_METHODS + catalog.TASK_RUN_METHODS:
            # Crews are usually built by a factory, so their type is not visible where they run: in a
            # module that imports crewai, the method name decides, unless it names a function of the tree.
            crewai_module = any(imp.startswith("crewai") for imp in module.imported_modules)
            if crewai_module and not (name and self.project.function(name) is not None):
                return f"{dotted(call.func.value) or 'crew'}.{call.func.attr}"
        return None

    def _work_sites(self, function: Function):
        for node in walk_own(function.node):
            if isinstance(node, ast.Call):
                work = self._work_name(node, function.module, function)
                if work:
                    yield node, work

    def reaches_work(self, function: Function, depth: int = 0) -> bool:
        """Whether `function` calls LLM/agent work, directly or through functions of the tree."""
        key = function.qualname
        if key in self._reaches_work:
            return self._reaches_work[key]
        self._reaches_work[key] = False  # cycle guard
        result = any(True for _ in self._work_sites(function))
        if not result and depth < 8:
            for node in walk_own(function.node):
                if isinstance(node, ast.Call):
                    name = self.project.callee(function.module, node, function)
                    callee = self.project.function(name) if name else None
                    if callee is not None and self.reaches_work(callee, depth + 1):
                        result = True
                        break
        self._reaches_work[key] = result
        return result

    def _tree_callee(self, expr: ast.expr, module: Module, function: Function | None) -> Function | None:
        name = self.project.qualify(expr, module, function)
        return self.project.function(name) if name else None

    # -- GT102 ---------------------------------------------------------------------------------------

    def _gt102(self, module: Module) -> list[Finding]:
        findings = []
        for call, function in self._calls(module):
            work = self._work_name(call, module, function)
            if not work:
                continue
            verdict, path = self._site_attribution(module, call, function)
            if verdict == "unattributed":
                route = " -> ".join(path)
                findings.append(self._finding(
                    "GT102", module, call,
                    f"`{work}()` runs with no tenant context when reached from {route}: its cost is unattributable"))
        return findings

    def _site_attribution(self, module: Module, node: ast.AST, function: Function | None) -> tuple[str, list[str]]:
        if self._under_tenant_context(module, node, function):
            return "attributed", []
        if function is None:
            where = "the `__main__` block" if self._in_main_guard(module, node) else "module level"
            return "unattributed", [f"{module.relpath} ({where})"]
        return self._function_attribution(function)

    def _function_attribution(self, function: Function, depth: int = 0) -> tuple[str, list[str]]:
        key = function.qualname
        if key in self._attribution:
            return self._attribution[key]
        self._attribution[key] = ("unknown", [])  # cycle guard: a recursive path proves nothing
        label = f"`{key.rsplit('.', 2)[-2] + '.' if function.cls else ''}{function.node.name}`"
        entry = self._entry_kind(function)
        if entry == "attributed":
            result = ("attributed", [])
        elif entry:
            result = ("unattributed", [f"{label} ({entry})"])
        else:
            verdicts = []
            for caller_module, call, caller in self.callers(function) if depth < 10 else ():
                verdict, path = self._site_attribution(caller_module, call, caller) if caller is None or \
                    self._under_tenant_context(caller_module, call, caller) else self._function_attribution(caller, depth + 1)
                if verdict == "unattributed":
                    verdicts = [(verdict, [*path, label])]
                    break
                verdicts.append((verdict, path))
            if verdicts and verdicts[0][0] == "unattributed":
                result = verdicts[0]
            elif verdicts and all(v == "attributed" for v, _ in verdicts):
                result = ("attributed", [])
            else:
                result = ("unknown", [])
        self._attribution[key] = result
        return result

    def _entry_kind(self, function: Function) -> str | None:
        """'attributed' for a request handler that receives the caller's baggage; a description for an
        entry point (CLI command, web handler without propagation, script main); None otherwise."""
        for decorator in function.node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = self.project.qualify(target, function.module, None) or dotted(target) or ""
            last = name.rsplit(".", 1)[-1]
            if last in catalog.ROUTE_DECORATORS and isinstance(target, ast.Attribute):
                return "attributed" if self._propagates(function.module) else "web request handler"
            if last in ("command", "callback") or name.startswith(("click.", "typer.")):
                return "CLI command"
            if _like(name, catalog.TENANT_CONTEXT_CALLS):
                return "attributed"
        for target in self.config.scripts.values():
            module_name, _, func = target.partition(":")
            if f"{module_name}.{func}" == function.qualname:
                return "console script"
        return None

    def _propagates(self, module: Module) -> bool:
        if module.path not in self._propagating:
            short_names = {name.rsplit(".", 1)[-1] for name in catalog.PROPAGATING_MIDDLEWARE}
            names = {self.project.qualify(n, module, None) for n in ast.walk(module.tree)
                     if isinstance(n, ast.Name) and n.id in short_names
                     or isinstance(n, ast.Attribute) and n.attr in short_names}
            self._propagating[module.path] = any(_like(name, catalog.PROPAGATING_MIDDLEWARE) for name in names if name)
        return self._propagating[module.path]

    def _under_tenant_context(self, module: Module, node: ast.AST, function: Function | None) -> bool:
        current = module.parents.get(node)
        while current is not None and not isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if isinstance(current, (ast.With, ast.AsyncWith)):
                for item in current.items:
                    expr = item.context_expr
                    name = self.project.qualify(expr.func if isinstance(expr, ast.Call) else expr, module, function)
                    if _like(name, catalog.TENANT_CONTEXT_CALLS):
                        return True
            current = module.parents.get(current)
        return any(line <= node.lineno for line in self._context_setter_lines(module, function))

    def _context_setter_lines(self, module: Module, function: Function | None) -> list[int]:
        """Lines of the scope that set baggage or attach a context outside a `with`."""
        key = (module.path, function.qualname if function is not None else None)
        if key not in self._setter_lines:
            setters = ("opentelemetry.baggage.set_baggage", "opentelemetry.context.attach",
                       "instrumentation.attach_carrier", "instrumentation.baggage.attach_carrier")
            self._setter_lines[key] = [
                call.lineno for call, scope in module.calls
                if scope is function and self.project.callee(module, call, function) in setters]
        return self._setter_lines[key]

    @staticmethod
    def _in_main_guard(module: Module, node: ast.AST) -> bool:
        current = module.parents.get(node)
        while current is not None:
            if isinstance(current, ast.If) and _is_main_guard(current):
                return True
            current = module.parents.get(current)
        return False

    def callers(self, function: Function) -> list[tuple[Module, ast.Call, Function | None]]:
        """Call sites in the tree that call `function` (or hand it to a thread that keeps context)."""
        key = function.qualname
        if key in self._callers:
            return self._callers[key]
        sites = []
        wanted = {function.qualname}
        if function.cls:
            wanted.add(function.qualname.replace(f".{function.cls}.", f".{function.cls}()."))
        for path in self._caller_candidates(function):
            module = self.project.module(path)
            if module is None:
                continue
            seen = set()
            for node, caller in self.project.calls_named(module, function.node.name):
                if id(node) in seen:
                    continue
                seen.add(id(node))
                name = self.project.callee(module, node, caller)
                if name in wanted or self._hands_over(node, name, module, caller, wanted):
                    sites.append((module, node, caller))
        self._callers[key] = sites
        return sites

    def _caller_candidates(self, function: Function) -> list:
        """Files that can call `function`: its own module, and files that name the function and import
        its module (or a name from it). A text filter, so most of the tree is never parsed."""
        module_last = function.module.name.rsplit(".", 1)[-1]
        return [path for path in self.project.texts_containing(function.node.name)
                if path == function.module.path or self.project.imports_word(path, module_last)]

    def _hands_over(self, call: ast.Call, name: str | None, module: Module, caller, wanted: set[str]) -> bool:
        """A thread, thread pool or asyncio launcher given `function`: context goes along with it."""
        restoring = {p for p, _, by in catalog.LAUNCHERS if by and by not in self.config.disabled_instrumentations}
        if not (name in restoring or (name or "").endswith((".run_in_executor", ".to_thread", ".create_task",
                                                                 ".gather", ".submit"))):
            return False
        arguments = [*call.args, *(k.value for k in call.keywords)]
        return any(self.project.qualify(a, module, caller) in wanted for a in arguments
                   if isinstance(a, (ast.Name, ast.Attribute)))

    # -- GT103 ---------------------------------------------------------------------------------------

    def _gt103(self, module: Module) -> list[Finding]:
        findings = []
        for call, function in self._calls(module):
            name = self.project.callee(module, call, function)
            if name is None:
                continue
            launcher = self._launcher(call, name, module, function)
            if launcher is None:
                continue
            pattern, target = launcher
            callee = self._tree_callee(target, module, function) if target is not None else None
            if callee is None or not self.reaches_work(callee) or self._carries_context(call, module, function, callee):
                continue
            findings.append(self._finding(
                "GT103", module, call,
                f"`{pattern.replace('()', '')}` runs `{callee.node.name}` (LLM/agent work) in another "
                f"{'thread' if 'Thread' in pattern or 'thread' in pattern else 'process'} without the trace "
                "and tenant context"))
        return findings

    def _launcher(self, call: ast.Call, name: str, module: Module, function) -> tuple[str, ast.expr | None] | None:
        for pattern, where, restored_by in catalog.LAUNCHERS:
            if not self._unrestored(restored_by):
                continue
            if name == pattern:
                return pattern, self._argument(call, where)
        if name.endswith(".run_in_executor") and len(call.args) >= 2:
            executor = self.project.qualify(call.args[0], module, function) or ""
            if "ProcessPoolExecutor" in executor and self._unrestored(catalog.PROCESS_POOL_RESTORED_BY):
                return "loop.run_in_executor(ProcessPoolExecutor)", call.args[1]
        return None

    def _unrestored(self, restored_by: str | None) -> bool:
        """No instrumentation carries the context across this launcher (none exists, or it is disabled)."""
        return restored_by is None or restored_by in self.config.disabled_instrumentations

    @staticmethod
    def _argument(call: ast.Call, where) -> ast.expr | None:
        if isinstance(where, str):
            for keyword in call.keywords:
                if keyword.arg == where:
                    return keyword.value
            return call.args[1] if where == "target" and len(call.args) > 1 else None
        return call.args[where] if len(call.args) > where else None

    def _carries_context(self, call: ast.Call, module: Module, function, callee: Function) -> bool:
        for node in ast.walk(call):
            if isinstance(node, ast.Call) and node is not call:
                if _like(self.project.qualify(node.func, module, function), catalog.CARRIER_CALLS):
                    return True
            if isinstance(node, ast.Name) and function is not None and node.id in function.bindings:
                value = function.value_at(node.id, node.lineno)
                if isinstance(value, ast.Call) and _like(self.project.qualify(value.func, module, function),
                                                         catalog.CARRIER_CALLS):
                    return True
        for node in walk_own(callee.node):  # a worker that attaches a carrier it was given
            if isinstance(node, ast.Call) and _like(self.project.qualify(node.func, callee.module, callee),
                                                    catalog.CONTEXT_ATTACH_CALLS):
                return True
        return False

    # -- GT104 ---------------------------------------------------------------------------------------

    def _gt104(self, module: Module) -> list[Finding]:
        findings = []
        for node, function in [*module.assigns, *module.calls]:
            for variable, value, where in _env_assignments(node, module, self.project, function):
                if variable in catalog.DISABLING_ENV:
                    values = catalog.DISABLING_ENV[variable]
                    text = _const_str(value)
                    if values is None or text in values:
                        findings.append(self._finding("GT104", module, where,
                                                      f"`{variable}` set in code switches tracing off"))
            if isinstance(node, ast.Call):
                name = self.project.callee(module, node, function)
                if _like(name, catalog.DISABLING_CALLS):
                    what = name.rsplit(".", 1)[-1]
                    findings.append(self._finding("GT104", module, node,
                                                  f"`{what}()` in code: spans of this path are suppressed or sent "
                                                  "to a provider the collector never sees"))
                elif isinstance(node.func, ast.Attribute) and node.func.attr == "uninstrument" and name and \
                        name.startswith(("opentelemetry.instrumentation", "openinference.instrumentation")):
                    findings.append(self._finding("GT104", module, node, "instrumentor uninstrumented in code"))
                elif _is_suppression(node, name):
                    findings.append(self._finding("GT104", module, node, "instrumentation suppressed through the "
                                                                         "context (`set_value` of a suppression key)"))
        return findings
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Name) and node.id in catalog.DISABLING_NAMES:
                findings.append(self._finding("GT104", module, node, f"`{node.id}` used: instrumentation suppressed"))
            elif isinstance(node, ast.Attribute) and node.attr in catalog.DISABLING_NAMES:
                findings.append(self._finding("GT104", module, node, f"`{node.attr}` used: instrumentation suppressed"))
        return findings

    # -- GT105 ---------------------------------------------------------------------------------------

    def _gt105(self, module: Module) -> list[Finding]:
        findings = []
        for node, function in [*module.assigns, *module.calls]:
            for variable, value, where in _env_assignments(node, module, self.project, function):
                on_values = catalog.CAPTURE_ENV.get(variable)
                if on_values and _const_str(value) in on_values:
                    findings.append(self._finding("GT105", module, where,
                                                  f"`{variable}` set in code forces content capture on"))
            if isinstance(node, ast.Call):
                name = self.project.callee(module, node, function)
                keyword = {"traceloop.sdk.Traceloop.init": "trace_content"}.get(name or "", "capture")
                if _like(name, catalog.CAPTURE_KEYWORD_CALLS) or keyword == "trace_content":
                    for kw in node.keywords:
                        if kw.arg == keyword and _const_str(kw.value) in catalog.CAPTURE_ON_VALUES:
                            findings.append(self._finding("GT105", module, node,
                                                          f"`{name}({keyword}=...)` forces content capture on"))
        return findings

    # -- GT106 ---------------------------------------------------------------------------------------

    def _gt106(self, module: Module) -> list[Finding]:
        if self.config.bootstrap == "opentelemetry-instrument":
            return []
        if self.config.bootstrap == "auto" and not self.bootstraps_in_code():
            return []
        findings = []
        for node, kind in self._entry_points(module):
            if not self._reaches_llm_modules(module) or self._has_bootstrap(module, node):
                continue
            findings.append(self._finding("GT106", module, node,
                                          f"{kind} reaches LLM code but never initialises tracing"))
        return findings

    def bootstraps_in_code(self) -> bool:
        if self._bootstraps_in_code is None:
            needles = ("instrumentation.init(", "from instrumentation import init", "genaitrace.init(")
            self._bootstraps_in_code = any(self.project.texts_containing(n) for n in needles)
        return self._bootstraps_in_code

    def _entry_points(self, module: Module):
        for node in module.tree.body:
            if isinstance(node, ast.If) and _is_main_guard(node):
                yield node, "`__main__` block"
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                name = self.project.qualify(node.value.func, module, None)
                if _like(name, catalog.WEB_APPS):
                    yield node, f"web app `{dotted(node.targets[0]) or 'app'}`"
        for target in self.config.scripts.values():
            module_name, _, func = target.partition(":")
            if module_name == module.name and f"{module.name}.{func}" in module.functions:
                yield module.functions[f"{module.name}.{func}"].node, f"console script `{target}`"

    def _reaches_llm_modules(self, module: Module, seen: set[str] | None = None) -> bool:
        seen = seen if seen is not None else set()
        if module.name in seen or len(seen) > 200:
            return False
        seen.add(module.name)
        if any(imp.split(".")[0] in catalog.LLM_MODULES or imp.startswith(catalog.LLM_MODULES)
               for imp in module.imported_modules):
            return True
        for imported in module.imported_modules:
            target = self._tree_module(imported)
            if target is not None and self._reaches_llm_modules(target, seen):
                return True
        return False

    def _tree_module(self, qualified: str) -> Module | None:
        name = qualified
        while name:
            module = self.project.module_named(name)
            if module is not None:
                return module
            name = name.rpartition(".")[0]
        return None

    def _has_bootstrap(self, module: Module, entry: ast.AST, seen: set[str] | None = None) -> bool:
        seen = seen if seen is not None else set()
        if module.name in seen or len(seen) > 200:
            return False
        seen.add(module.name)
        scopes = [module.tree] + ([entry] if entry is not None else [])
        for scope in scopes:
            for node in (walk_own(scope) if scope is not module.tree else _module_level(module.tree)):
                if isinstance(node, ast.Call):
                    function = self.project.enclosing_function(module, node)
                    name = self.project.qualify(node.func, module, function)
                    if _like(name, catalog.BOOTSTRAP_CALLS):
                        return True
                    callee = self.project.function(name) if name else None
                    if callee is not None and self._function_bootstraps(callee):
                        return True
        for imported in module.imported_modules:
            target = self._tree_module(imported)
            if target is not None and target is not module and self._has_bootstrap(target, None, seen):
                return True
        return False

    def _function_bootstraps(self, function: Function, depth: int = 0) -> bool:
        """Whether `function` initialises tracing, itself or through functions of the tree it calls."""
        key = function.qualname
        if key not in self._bootstrapping:
            self._bootstrapping[key] = False  # cycle guard
            found = False
            for node in walk_own(function.node):
                if not isinstance(node, ast.Call):
                    continue
                name = self.project.qualify(node.func, function.module, function)
                callee = self.project.function(name) if name and depth < 6 else None
                if _like(name, catalog.BOOTSTRAP_CALLS) or (callee and self._function_bootstraps(callee, depth + 1)):
                    found = True
                    break
            self._bootstrapping[key] = found
        return self._bootstrapping[key]


def _module_level(tree: ast.Module):
    """Statements that run at import time (not inside functions, classes or the __main__ guard)."""
    for statement in tree.body:
        if isinstance(statement, ast.If) and _is_main_guard(statement):
            continue
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield from (n for n in ast.walk(statement))


def _is_suppression(call: ast.Call, name: str | None) -> bool:
    """`context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True)`: reading the key is fine, setting it
    switches instrumentation off for everything that runs under the context."""
    if name != "opentelemetry.context.set_value" or not call.args:
        return False
    key = call.args[0]
    key_name = key.id if isinstance(key, ast.Name) else key.attr if isinstance(key, ast.Attribute) else None
    return key_name in catalog.DISABLING_NAMES


def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+\d+(?:\s*,\s*[A-Z]+\d+)*))?", re.IGNORECASE)
FILE_NOQA = re.compile(r"#\s*genaitrace:\s*noqa(?::\s*(?P<codes>[A-Z]+\d+(?:\s*,\s*[A-Z]+\d+)*))?", re.IGNORECASE)


def suppressed(finding: Finding, module: Module) -> bool:
    """`# noqa` / `# noqa: GT101` on the finding's first or last line; `# genaitrace: noqa[: ...]` anywhere."""
    for match in FILE_NOQA.finditer(module.source):
        codes = match.group("codes")
        if codes is None or finding.rule in {c.strip().upper() for c in codes.split(",")}:
            return True
    for line_number in {finding.line, finding.end_line}:
        if 0 < line_number <= len(module.lines):
            line = module.lines[line_number - 1]
            if FILE_NOQA.search(line):
                continue
            match = NOQA.search(line)
            if match and (match.group("codes") is None
                          or finding.rule in {c.strip().upper() for c in match.group("codes").split(",")}):
                return True
    return False
