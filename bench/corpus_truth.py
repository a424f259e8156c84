"""Ground truth for bench/corpus.py, in plain torch: which nn.Module classes of a package a
user can build, and their true parameter counts. Never imports paramlens.

    /work/corpus/.venv/bin/python bench/corpus_truth.py ROOT PKGDIR OUT [--only models/llama ...]

ROOT is the unpacked wheel (put first on sys.path), PKGDIR the import package inside it,
OUT the JSON written. Run it without network (bench/corpus.py uses ``unshare -rn``) and with
``HF_HUB_OFFLINE=1``: nothing may be downloaded.

How:

- **found**: every top-level class, in the measured files, whose bases resolve (by ``ast``,
  through imports, re-exports and star imports of the package) to ``torch.nn.<Class>`` or
  to another such class of the package;
- **reachable**: a class that builds in one of these ways, each recorded as a configuration
  keyed by the expression used: (a) ``Cls()`` when every ``__init__`` parameter has a
  default; (b) ``Cls(Config())`` when every required parameter is annotated with a class
  that builds with no arguments; (c) a public module-level factory function whose
  parameters all have defaults, decorated with ``register_model`` or annotated to return a
  module class of the package, called with ``pretrained=False``/``weights=None``, keyed
  ``factory:<name>``; (d) a call site in the measured files whose arguments are literals,
  module constants or names of classes/functions (of the package or of torch); (e) a call
  in the documentation (the ``README.md`` beside the package, read from ```` ```python ````
  fences, and ``>>>`` examples in the measured files' docstrings), evaluated after the
  block's own imports, with the names the block bound earlier written in (keyed by the
  expression with those names replaced); every example, up to ``MAX_DOC_EXAMPLES`` per
  class; reST literal blocks too (``README.rst``, and the ``Examples::`` /
  ``.. code-block:: python`` blocks of the docstrings);
- (f) a JSON file of the package (``model_configs/ViT-B-32.json``) whose object gives every
  required parameter of a class and whose every key is a parameter (top-level boolean
  keys that are not, the loader's switches like ``custom_text``, left out): the class
  called with those keys, keyed ``Cls(k=v, ...)``;
- each build runs in a forked child (one at a time) under ``torch.device("meta")``, retried
  on the CPU with at most ``--cpu-mb`` of heap if meta fails, killed after ``--timeout``
  seconds; the count is ``sum(p.numel() for p in model.parameters())``.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import copy
import doctest
import importlib
import inspect
import json
import os
import re
import resource
import select
import signal
import sys
import time
import traceback
import typing
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch
from torch import nn

MAX_CALL_SITES = 8  # per class
MAX_DOC_EXAMPLES = 64  # per class: a README may show one class in 47 configurations


# ------------------------------------------------------------------------- ast scan


@dataclass
class ModuleInfo:
    name: str
    path: Path
    tree: ast.Module
    imports: dict[str, str] = field(default_factory=dict)  # local name -> dotted target
    stars: list[str] = field(default_factory=list)  # modules star-imported
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)


class Package:
    def __init__(self, root: Path, pkgdir: str) -> None:
        self.root = root
        self.pkgdir = pkgdir
        self.modules: dict[str, ModuleInfo | None] = {}
        self._module_memo: dict[str, bool] = {}

    def path_of(self, dotted: str) -> Path | None:
        base = self.root.joinpath(*dotted.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def module(self, dotted: str) -> ModuleInfo | None:
        if dotted in self.modules:
            return self.modules[dotted]
        self.modules[dotted] = None
        if not (dotted == self.pkgdir or dotted.startswith(self.pkgdir + ".")):
            return None
        path = self.path_of(dotted)
        if path is None:
            return None
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
        except SyntaxError:
            return None
        info = ModuleInfo(dotted, path, tree)
        is_package = path.name == "__init__.py"
        for node in tree.body:
            self._collect(info, node, is_package)
        self.modules[dotted] = info
        return info

    def _collect(self, info: ModuleInfo, node: ast.stmt, is_package: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    info.imports[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    info.imports[head] = head
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = info.name.split(".")
                if not is_package:
                    parts = parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                source = ".".join([*parts, node.module] if node.module else parts)
            else:
                source = node.module or ""
            for alias in node.names:
                if alias.name == "*":
                    info.stars.append(source)
                else:
                    info.imports[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.ClassDef):
            info.classes[node.name] = node
        elif isinstance(node, ast.FunctionDef):
            info.functions[node.name] = node
        elif isinstance(node, ast.If | ast.Try):
            # `if TYPE_CHECKING:` / `try: import x except ImportError:` blocks
            bodies = [node.body, node.orelse]
            if isinstance(node, ast.Try):
                bodies += [h.body for h in node.handlers] + [node.finalbody]
            for body in bodies:
                for child in body:
                    self._collect(info, child, is_package)

    def dotted(self, info: ModuleInfo, expr: ast.expr) -> str | None:
        parts: list[str] = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if isinstance(expr, ast.Subscript):  # Generic[T] bases
            return None
        if not isinstance(expr, ast.Name):
            return None
        head = expr.id
        if head in info.imports:
            base = info.imports[head]
        elif head in info.classes or head in info.functions:
            base = f"{info.name}.{head}"
        else:
            base = None
            for star in info.stars:
                found = self.resolve(f"{star}.{head}", 0)
                if found:
                    base = found
                    break
            if base is None:
                base = head
        return ".".join([base, *reversed(parts)])

    def resolve(self, dotted: str, depth: int) -> str | None:
        """The definition a dotted name points to: 'torch.nn.X' or 'pkg.mod.Class'."""
        if depth > 12:
            return None
        if dotted.startswith("torch."):
            return dotted
        pieces = dotted.split(".")
        for cut in range(len(pieces) - 1, 0, -1):
            info = self.module(".".join(pieces[:cut]))
            if info is None:
                continue
            rest = pieces[cut:]
            name = rest[0]
            if len(rest) == 1 and (name in info.classes or name in info.functions):
                return dotted
            if name in info.imports:
                return self.resolve(".".join([info.imports[name], *rest[1:]]), depth + 1)
            for star in info.stars:
                found = self.resolve(".".join([star, *rest]), depth + 1)
                if found:
                    return found
            return None
        return None

    def class_node(self, qual: str) -> tuple[ModuleInfo, ast.ClassDef] | None:
        mod, _, name = qual.rpartition(".")
        info = self.module(mod)
        if info and name in info.classes:
            return info, info.classes[name]
        return None

    def is_module_class(self, qual: str) -> bool:
        if qual.startswith("torch."):
            last = qual.rsplit(".", 1)[-1]
            return (
                qual.startswith("torch.nn.")
                and last[:1].isupper()
                and not qual.startswith("torch.nn.functional")
            ) or qual in ("torch.jit.ScriptModule",)
        if qual in self._module_memo:
            return self._module_memo[qual]
        self._module_memo[qual] = False  # cycles
        found = self.class_node(qual)
        result = False
        if found:
            info, node = found
            for base in node.bases:
                dotted = self.dotted(info, base)
                target = dotted and self.resolve(dotted, 0)
                if target and self.is_module_class(target):
                    result = True
                    break
        self._module_memo[qual] = result
        return result


# --------------------------------------------------------------------------- builds


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]


def _count(model: object) -> dict[str, object]:
    if not isinstance(model, nn.Module):
        return {"error": f"returned {type(model).__name__}, not an nn.Module"}
    kind = type(model)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "type": f"{kind.__module__}.{kind.__qualname__}",
    }


def _child(build: typing.Callable[[], object], cpu_mb: int) -> dict[str, object]:
    try:
        with torch.device("meta"):
            model = build()
        return {**_count(model), "device": "meta"}
    except BaseException as exc:  # retried on the CPU
        meta_error = _describe(exc)
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        status = Path("/proc/self/status").read_text()
        data_kb = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmData:")
        )
        resource.setrlimit(resource.RLIMIT_DATA, (data_kb * 1024 + cpu_mb * 2**20, hard))
        model = build()
        return {**_count(model), "device": "cpu", "meta_error": meta_error}
    except MemoryError:
        return {"error": f"MemoryError on cpu (meta: {meta_error})"}
    except BaseException as exc:
        return {"error": _describe(exc), "meta_error": meta_error}


def run_build(build: typing.Callable[[], object], timeout: float, cpu_mb: int) -> dict[str, object]:
    """Build in a forked child; its JSON result comes back through a pipe."""
    sys.stdout.flush()
    sys.stderr.flush()
    read, write = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        os.setsid()
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            result = _child(build, cpu_mb)
        except BaseException as exc:
            result = {"error": _describe(exc)}
        os.write(write, json.dumps(result, default=str).encode())
        os._exit(0)
    os.close(write)
    chunks: list[bytes] = []
    deadline = started + timeout
    timed_out = False
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read], [], [], left)
        if ready:
            chunk = os.read(read, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.close(read)
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    ms = round((time.perf_counter() - started) * 1000, 1)
    if timed_out:
        return {"error": f"timeout after {timeout:g} s", "ms": ms}
    try:
        result = json.loads(b"".join(chunks))
    except ValueError:
        result = {"error": f"child died (status {status})"}
    result["ms"] = ms
    return result


# ------------------------------------------------------------------------ reachability


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout("import took too long")


def import_module(name: str, seconds: int) -> tuple[object | None, str | None]:
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return importlib.import_module(name), None
    except BaseException as exc:
        return None, _describe(exc)
    finally:
        signal.alarm(0)


SIMPLE_TYPES = (int, float, str, bool, type(None), complex)


def _plain_value(value: object) -> bool:
    if isinstance(value, SIMPLE_TYPES):
        return True
    if isinstance(value, tuple | list):
        return all(_plain_value(v) for v in value)
    return False


def _acceptable_arg(expr: ast.expr, namespace: dict[str, object], pkgdir: str) -> bool:
    try:
        ast.literal_eval(expr)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(expr, ast.Name | ast.Attribute):
        try:
            value = eval(compile(ast.Expression(expr), "<arg>", "eval"), namespace)
        except Exception:
            return False
        if _plain_value(value):
            return True
        if inspect.isclass(value) or inspect.isfunction(value):
            return (getattr(value, "__module__", "") or "").split(".")[0] in (pkgdir, "torch")
    return False


def _annotation_classes(annotation: object, namespace: dict[str, object]) -> list[type]:
    if annotation is inspect.Parameter.empty or annotation is inspect.Signature.empty:
        return []
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, namespace)
        except Exception:
            try:
                tree = ast.parse(annotation, mode="eval")
            except SyntaxError:
                return []
            found = []
            for node in ast.walk(tree):
                if isinstance(node, ast.Name | ast.Attribute):
                    try:
                        value = eval(compile(ast.Expression(node), "<ann>", "eval"), namespace)
                    except Exception:
                        continue
                    if inspect.isclass(value):
                        found.append(value)
            return found
    if inspect.isclass(annotation):
        return [annotation]
    out: list[type] = []
    for arg in typing.get_args(annotation):
        out.extend(_annotation_classes(arg, namespace))
    return out


def _config_class(annotation: object, namespace: dict[str, object]) -> type | None:
    for cls in _annotation_classes(annotation, namespace):
        if cls.__module__ in ("builtins", "typing") or issubclass(cls, torch.Tensor):
            continue
        top = cls.__module__.split(".")[0]
        if top in ("torch", "collections", "enum", "numpy", "abc") or cls is type(None):
            continue
        if getattr(builtins, cls.__name__, None) is cls:
            continue
        return cls
    return None


def _signature(target: object) -> inspect.Signature | None:
    try:
        return inspect.signature(target)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _required(sig: inspect.Signature) -> list[inspect.Parameter]:
    return [
        p
        for p in sig.parameters.values()
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def factory_kwargs(sig: inspect.Signature) -> dict[str, object]:
    kwargs: dict[str, object] = {}
    for name in sig.parameters:
        if name == "pretrained" or name.startswith("pretrained_"):
            kwargs[name] = False
        elif name == "weights" or name.startswith("weights_"):
            kwargs[name] = None
    return kwargs


def is_factory_candidate(node: ast.FunctionDef) -> bool:
    if node.name.startswith("_"):
        return False
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    if len(args.defaults) != len(positional):
        return False
    if any(d is None for d in args.kw_defaults):
        return False
    decorated = any("register_model" in ast.unparse(d) for d in node.decorator_list)
    return decorated or node.returns is not None


_FENCE = re.compile(
    r"^(```|~~~)[ \t]*(python|py|python3|pycon)?[ \t]*\n(.*?)^\1[ \t]*$", re.M | re.S
)


def rst_literal_blocks(text: str) -> list[str]:
    """The literal blocks of reST text (its own reading, not paramlens's): after a line
    ending in ``::`` that is not a directive, or a ``code-block``/``code``/``sourcecode``/
    ``testcode`` directive for Python, the lines indented deeper than that line."""
    out = []
    lines = text.expandtabs().split("\n")
    for i, line in enumerate(lines):
        head = line.strip()
        code = re.match(r"\.\. (code-block|code|sourcecode|testcode)::\s*(\w*)\s*$", head)
        if code:
            if code.group(2).lower() not in ("", "python", "py", "python3", "pycon"):
                continue
        elif not head.endswith("::") or re.match(r"\.\. [\w:-]+::", head):
            continue
        depth = len(line) - len(line.lstrip())
        body = []
        for later in lines[i + 1 :]:
            if later.strip() and len(later) - len(later.lstrip()) <= depth:
                break
            body.append(later)
        while body and (not body[0].strip() or body[0].strip().startswith(":")):
            body.pop(0)
        pad = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
        block = "\n".join(b[pad:] for b in body).strip()
        if block and ">>>" not in block:
            out.append(block + "\n")
    return out


def doc_blocks(root: Path, files: list[Path]) -> list[tuple[str, list[str], str | None]]:
    """(where, statements' sources, the docstring's module or None) per documentation block."""
    blocks: list[tuple[str, list[str], str | None]] = []
    readme_rst = root / "README.rst"
    if readme_rst.is_file():
        for n, code in enumerate(rst_literal_blocks(readme_rst.read_text(errors="replace"))):
            blocks.append((f"README.rst#{n}", [code], None))
    readme = root / "README.md"
    if readme.is_file():
        for match in _FENCE.finditer(readme.read_text(errors="replace")):
            code = match.group(3)
            if ">>>" in code:
                sources = [e.source for e in doctest.DocTestParser().get_examples(code)]
            else:
                sources = [code]
            blocks.append((f"README.md@{match.start()}", sources, None))
    for path in files:
        rel = path.relative_to(root).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        text = path.read_text(errors="replace")
        if ">>>" not in text and "::" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            doc = (
                ast.get_docstring(node, clean=False)
                if isinstance(
                    node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
                )
                else None
            )
            if doc and "::" in doc:
                for n, code in enumerate(rst_literal_blocks(doc)):
                    where = f"{path}:{getattr(node, 'lineno', 1)}#{n}"
                    blocks.append((where, [code], ".".join(parts)))
            if doc and ">>>" in doc:
                try:
                    examples = doctest.DocTestParser().get_examples(doc)
                except ValueError:
                    continue
                blocks.append(
                    (
                        f"{path}:{getattr(node, 'lineno', 1)}",
                        [e.source for e in examples],
                        ".".join(parts),
                    )
                )
    return blocks


class _Inline(ast.NodeTransformer):
    def __init__(self, bound: dict[str, ast.expr]) -> None:
        self.bound = bound

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and node.id in self.bound:
            return copy.deepcopy(self.bound[node.id])
        return node


def doc_calls(
    block: list[str], namespace: dict[str, object], found: set[str]
) -> typing.Iterator[tuple[str, ast.Call]]:
    """(class, call with the block's bound names written in) for calls of found classes."""
    bound: dict[str, ast.expr] = {}
    for source in block:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                try:
                    exec(compile(ast.Module([stmt], []), "<doc>", "exec"), namespace)
                except Exception:
                    pass
                continue
            for node in ast.walk(stmt):
                if not isinstance(node, ast.Call):
                    continue
                try:
                    callee = eval(compile(ast.Expression(node.func), "<doc>", "eval"), namespace)
                except Exception:
                    continue
                qual = f"{getattr(callee, '__module__', '')}.{getattr(callee, '__qualname__', '')}"
                if inspect.isclass(callee) and qual in found:
                    yield qual, _Inline(bound).visit(copy.deepcopy(node))
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                bound[stmt.targets[0].id] = _Inline(bound).visit(copy.deepcopy(stmt.value))


def json_configs(
    root: Path, found: dict[str, dict[str, object]], loaded: dict[str, object]
) -> typing.Iterator[tuple[str, str, dict[str, object]]]:
    """(class, key, keyword arguments) for each JSON object of the package that fits a
    found class's signature (see the module's docstring, (f))."""
    signatures = {}
    for qual in found:
        mod_name, _, cls_name = qual.rpartition(".")
        cls = getattr(loaded.get(mod_name), cls_name, None)
        sig = _signature(cls) if inspect.isclass(cls) else None
        if sig is not None and _required(sig):
            named = {
                n
                for n, p in sig.parameters.items()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            }
            signatures[qual] = (cls_name, {p.name for p in _required(sig)}, named)
    for path in sorted(root.rglob("*.json")):
        if ".dist-info" in str(path) or path.stat().st_size > 1 << 20:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(data, dict):
            continue
        for qual, (cls_name, required, named) in signatures.items():
            kwargs = {k: v for k, v in data.items() if k in named or not isinstance(v, bool)}
            if required <= kwargs.keys() and kwargs.keys() <= named:
                text = f"{cls_name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
                yield qual, text, kwargs


def _decorated_by_registry(node: ast.FunctionDef) -> bool:
    return any("register_model" in ast.unparse(d) for d in node.decorator_list)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("pkgdir")
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", nargs="*", default=[], help="sub-folders of PKGDIR to measure")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--cpu-mb", type=int, default=4096)
    args = parser.parse_args()
    started = time.perf_counter()
    root = args.root.resolve()
    sys.path.insert(0, str(root))
    torch.set_num_threads(1)
    with torch.device("meta"):  # the first meta build imports ~800 modules: once, here
        nn.Linear(2, 2)

    package = Package(root, args.pkgdir)
    base = root / args.pkgdir
    folders = [base / sub for sub in args.only] if args.only else [base]
    files = sorted(
        {
            f
            for folder in folders
            for f in (folder.rglob("*.py") if folder.is_dir() else [folder.with_suffix(".py")])
        }
    )
    found: dict[str, dict[str, object]] = {}
    factories: dict[str, dict[str, object]] = {}
    measured_modules: list[str] = []
    for path in files:
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        info = package.module(name)
        if info is None:
            continue
        measured_modules.append(name)
        for cls_name, node in info.classes.items():
            if package.is_module_class(f"{name}.{cls_name}"):
                found[f"{name}.{cls_name}"] = {
                    "name": cls_name,
                    "file": str(path.relative_to(root)),
                    "line": node.lineno,
                    "configs": {},
                    "failures": {},
                }
        for fn_name, node in info.functions.items():
            if is_factory_candidate(node):
                factories[f"{name}.{fn_name}"] = {
                    "name": fn_name,
                    "file": str(path.relative_to(root)),
                    "line": node.lineno,
                }

    # import every measured module that has something to build
    import_errors: dict[str, str] = {}
    loaded: dict[str, object] = {}
    wanted = sorted({q.rpartition(".")[0] for q in [*found, *factories]} | set(measured_modules))
    for name in wanted:
        module, error = import_module(name, 60)
        if error:
            import_errors[name] = error
        else:
            loaded[name] = module
    print(
        f"{len(found)} classes, {len(factories)} factory candidates, {len(import_errors)} of {len(wanted)} modules failed to import",
        file=sys.stderr,
    )

    plans: list[
        tuple[str, str, typing.Callable[[], object]]
    ] = []  # (class or factory qual, key, build)
    for qual, entry in found.items():
        mod_name, _, cls_name = qual.rpartition(".")
        module = loaded.get(mod_name)
        if module is None:
            entry["import_error"] = import_errors.get(mod_name, "not imported")
            continue
        cls = getattr(module, cls_name, None)
        if not inspect.isclass(cls):
            entry["import_error"] = "not defined after import"
            continue
        sig = _signature(cls)
        if sig is None:
            continue
        required = _required(sig)
        if not required:
            plans.append((qual, f"{cls_name}()", lambda cls=cls: cls()))
            continue
        namespace = vars(module)
        configs = [_config_class(p.annotation, namespace) for p in required]
        if all(configs):
            positional = all(
                p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in required
            )
            ordered = list(sig.parameters.values())
            leading = positional and [p.name for p in ordered[: len(required)]] == [
                p.name for p in required
            ]
            if leading:
                key = f"{cls_name}({', '.join(f'{c.__name__}()' for c in configs)})"
            else:
                key = f"{cls_name}({', '.join(f'{p.name}={c.__name__}()' for p, c in zip(required, configs))})"

            def build(cls=cls, required=required, configs=configs):  # type: ignore[no-untyped-def]
                return cls(**{p.name: c() for p, c in zip(required, configs)})

            plans.append((qual, key, build))

    # call sites with literal arguments, in the measured modules
    short_names: dict[str, list[str]] = {}
    for qual in found:
        short_names.setdefault(qual.rpartition(".")[2], []).append(qual)
    per_class: dict[str, set[str]] = {}
    for name in measured_modules:
        module = loaded.get(name)
        info = package.modules.get(name)
        if module is None or info is None:
            continue
        namespace = vars(module)
        for node in ast.walk(info.tree):
            if not isinstance(node, ast.Call) or not (node.args or node.keywords):
                continue
            func = node.func
            last = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else None
            )
            if last not in short_names:
                continue
            dotted = package.dotted(info, func)
            target = dotted and package.resolve(dotted, 0)
            if target not in found:
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            ):
                continue
            values = [*node.args, *(k.value for k in node.keywords)]
            if not all(_acceptable_arg(v, namespace, args.pkgdir) for v in values):
                continue
            text = ast.unparse(node)
            seen = per_class.setdefault(target, set())
            if text in seen or len(seen) >= MAX_CALL_SITES:
                continue
            seen.add(text)
            code = compile(ast.Expression(node), f"{info.path}:{node.lineno}", "eval")
            scope = namespace
            if isinstance(func, ast.Name) and func.id not in namespace:
                # imported in a block that import did not run (`if __name__ == "__main__":`)
                owner = loaded.get(target.rpartition(".")[0])
                scope = {**namespace, func.id: getattr(owner, target.rpartition(".")[2], None)}
            plans.append((target, text, lambda code=code, ns=scope: eval(code, ns)))

    # documentation examples: the README's code blocks and the docstrings' >>> examples
    for where, block, module_name in doc_blocks(root, files):
        module = loaded.get(module_name) if module_name is not None else None
        if module_name is not None and module is None:
            continue
        namespace = dict(vars(module)) if module is not None else {"__name__": "__doc__"}
        for target, call in doc_calls(block, namespace, set(found)):
            text = ast.unparse(call)
            seen = per_class.setdefault(target, set())
            if text in seen or len(seen) >= MAX_CALL_SITES + MAX_DOC_EXAMPLES:
                continue
            seen.add(text)
            code = compile(ast.Expression(call), where, "eval")
            plans.append((target, text, lambda code=code, ns=namespace: eval(code, ns)))

    # JSON config files whose keys fit a class's constructor
    for target, text, kwargs in json_configs(root, found, loaded):
        mod_name, _, cls_name = target.rpartition(".")
        cls = getattr(loaded[mod_name], cls_name)
        plans.append((target, text, lambda cls=cls, kwargs=kwargs: cls(**kwargs)))

    # factories
    factory_plans: list[tuple[str, typing.Callable[[], object]]] = []
    for qual, entry in factories.items():
        mod_name, _, fn_name = qual.rpartition(".")
        module = loaded.get(mod_name)
        fn = getattr(module, fn_name, None) if module is not None else None
        if fn is None or not callable(fn):
            entry["skip"] = "not imported"
            continue
        sig = _signature(fn)
        if sig is None or _required(sig):
            entry["skip"] = "needs arguments"
            continue
        node = package.modules[mod_name].functions[fn_name]  # type: ignore[union-attr]
        if not _decorated_by_registry(node):
            returned = _annotation_classes(
                sig.return_annotation, getattr(fn, "__globals__", vars(module))
            )
            if not any(isinstance(c, type) and issubclass(c, nn.Module) for c in returned):
                entry["skip"] = "does not return an nn.Module"
                continue
        kwargs = factory_kwargs(sig)
        entry["call"] = f"{fn_name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        factory_plans.append((qual, lambda fn=fn, kwargs=kwargs: fn(**kwargs)))
    factories = {q: e for q, e in factories.items() if "skip" not in e}

    total = len(plans) + len(factory_plans)
    print(f"{total} builds", file=sys.stderr)
    done = 0
    for qual, key, build in plans:
        result = run_build(build, args.timeout, args.cpu_mb)
        entry = found[qual]
        if "params" in result and result.get("type") == qual:
            entry["configs"][key] = result  # type: ignore[index]
        elif "params" in result:
            entry["failures"][key] = {"error": f"built a {result.get('type')}", **result}  # type: ignore[index]
        else:
            entry["failures"][key] = result  # type: ignore[index]
        done += 1
        if done % 100 == 0:
            print(
                f"  {done}/{total} builds, {time.perf_counter() - started:.0f} s", file=sys.stderr
            )
    for qual, build in factory_plans:
        result = run_build(build, args.timeout, args.cpu_mb)
        entry = factories[qual]
        entry.update(result)
        kind = result.get("type")
        if "params" in result and kind in found:
            found[kind]["configs"][f"factory:{entry['name']}"] = {**result, "factory": qual}  # type: ignore[index]
        done += 1
        if done % 100 == 0:
            print(
                f"  {done}/{total} builds, {time.perf_counter() - started:.0f} s", file=sys.stderr
            )

    for entry in found.values():
        entry["reachable"] = bool(entry["configs"])
    report = {
        "root": str(root),
        "pkgdir": args.pkgdir,
        "only": args.only,
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - started, 1),
        "import_errors": import_errors,
        "classes": found,
        "factories": factories,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    reachable = sum(1 for e in found.values() if e["reachable"])
    print(
        f"{len(found)} classes, {reachable} reachable, {len(factories)} factories, {report['seconds']} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
