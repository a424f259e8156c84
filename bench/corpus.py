"""Benchmark paramlens against real model code we did not write: how many classes get figures.

    python -m bench.corpus [--corpus /work/corpus] [--packages timm,vit-pytorch] [--json OUT]

Steps, each cached under the corpus folder (``--corpus``, default ``/work/corpus``):

1. fetch: ``pip download --no-deps`` the pinned wheels below and unpack each into
   ``src/<name>/`` (licence copied from its .dist-info to ``src/<name>/``), with a
   ``pyproject.toml`` holding only ``[tool.paramlens]`` so that folder is the workspace root,
   and the project's published README (the long description in ``.dist-info/METADATA``,
   when it is Markdown) as ``src/<name>/README.md``, where a checkout has it;
2. an interpreter for the builds, ``.venv``: torch, torchvision and the packages' runtime
   dependencies (pinned in ``VENV_PINS``), but none of the corpus packages themselves;
3. the ground truth, in plain torch, without paramlens: ``bench/corpus_truth.py`` run with
   that interpreter writes ``truth/<name>.json`` (every ``nn.Module`` subclass, which ones a
   user can build and how, and their parameter counts);
4. paramlens: ``paramlens summary <pkgdir> --format json --python .venv/bin/python``, once
   with an empty cache (cold) and once more on the cache it filled (warm), output kept in
   ``paramlens/<name>.json``;
5. a table per package: classes found, reachable (per the truth), built by paramlens, with
   figures (built, measured through a factory, or as instances inside other models), wrong
   totals, reachable but not built (with paramlens's message), and the times.

transformers and diffusers are large: by default only the sub-folders in ``SUBSETS`` are
scanned and measured (``--full`` takes the whole package). Packages whose code imports
another corpus package (timm, for open_clip and segmentation_models_pytorch) get that
package's folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import ast
import email
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import REPO, measure
from bench.real_args import classify


@dataclass(frozen=True)
class Package:
    name: str  # the folder under src/, and the name the table shows
    pin: str  # what pip downloads
    pkgdir: str  # the import package inside the wheel
    measured: tuple[str, ...] = ()  # sub-folders of pkgdir to measure ("" = all of it)
    needs: tuple[str, ...] = ()  # other corpus packages its code imports


PACKAGES = [
    Package("vit-pytorch", "vit-pytorch==1.26.14", "vit_pytorch"),
    Package("x-transformers", "x-transformers==2.31.10", "x_transformers"),
    Package("timm", "timm==1.0.31", "timm"),
    Package("torchvision", "torchvision==0.29.1", "torchvision", ("models",)),
    Package(
        "segmentation_models_pytorch",
        "segmentation_models_pytorch==0.6.0",
        "segmentation_models_pytorch",
        needs=("timm",),
    ),
    Package("open_clip_torch", "open_clip_torch==3.3.0", "open_clip", needs=("timm",)),
    Package("monai", "monai==1.6.1", "monai", ("networks",)),
    Package("transformers", "transformers==5.24.0", "transformers"),
    Package("diffusers", "diffusers==0.42.1", "diffusers", needs=("transformers",)),
]

# Sub-folders measured by default for the large packages (``--full`` measures everything).
SUBSETS = {
    "transformers": (
        "models/gpt2",
        "models/llama",
        "models/bert",
        "models/t5",
        "models/vit",
        "models/whisper",
        "models/clip",
        "models/mistral",
    ),
    "diffusers": ("models/unets", "models/autoencoders", "models/transformers"),
}

# The build interpreter: torch and torchvision lie on this machine's disk (never an unpinned
# torch: it would download a multi-GB CUDA build), the rest are the corpus's dependencies.
VENV_PINS = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "numpy==2.4.6",
    "pillow==13.0.0",
    "einops==0.8.2",
    "einx==0.4.3",
    "loguru==0.7.3",
    "torch-einops-utils==0.2.0",
    "huggingface_hub==2.4.0",
    "safetensors==0.8.0",
    "tokenizers==0.23.3",
    "regex==2026.11.19",
    "PyYAML==6.0.4",
    "tqdm==4.70.1",
    "packaging==26.4",
    "filelock==4.3.1",
    "requests==2.34.2",
    "typer==0.29.2",
    "importlib_metadata==10.2.0",
    "ftfy==6.3.1",
]

TRUTH_SCRIPT = REPO / "bench" / "corpus_truth.py"


# ---------------------------------------------------------------------------- fetch


def write_readme(folder: Path) -> None:
    """The README a checkout has, from the wheel's metadata: the long description (the
    body after the headers, or an old-style ``Description`` header), if it is Markdown."""
    readme = folder / "README.md"
    if readme.exists():
        return
    for metadata in folder.glob("*.dist-info/METADATA"):
        message = email.message_from_string(metadata.read_text(encoding="utf-8"))
        kind = message.get("Description-Content-Type", "text/markdown")
        body = message.get_payload() or message.get("Description", "")
        if isinstance(body, str) and body.strip() and kind.startswith("text/markdown"):
            readme.write_text(body, encoding="utf-8")


def fetch(corpus: Path, package: Package) -> Path:
    """Download and unpack one wheel (once); returns ``src/<name>``."""
    folder = corpus / "src" / package.name
    marker = folder / ".unpacked"
    if marker.exists() and marker.read_text() == package.pin:
        write_readme(folder)
        return folder
    wheels = corpus / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    name, version = package.pin.split("==")
    stem = name.replace("-", "_").lower()

    def find() -> list[Path]:
        return [w for w in wheels.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-")]

    if not find():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                package.pin,
                "-d",
                str(wheels),
            ],
            check=True,
        )
    (wheel,) = find()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    for info in folder.glob("*.dist-info"):
        for licence in [
            *info.glob("LICEN[CS]E*"),
            *info.glob("licenses/*"),
            *info.glob("COPYING*"),
        ]:
            if licence.is_file():
                shutil.copy(licence, folder / licence.name)
    (folder / "pyproject.toml").write_text("[tool.paramlens]\n")
    write_readme(folder)
    marker.write_text(package.pin)
    return folder


def ensure_venv(corpus: Path) -> Path:
    python = corpus / ".venv" / "bin" / "python"
    marker = corpus / ".venv" / ".pins"
    pins = "\n".join(VENV_PINS)
    if python.exists() and marker.exists() and marker.read_text() == pins:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(corpus / ".venv")], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *VENV_PINS], check=True)
    marker.write_text(pins)
    return python


# ---------------------------------------------------------------------------- truth


def truth(
    corpus: Path,
    python: Path,
    package: Package,
    only: tuple[str, ...],
    refresh: bool,
    timeout: float,
) -> dict:
    out = corpus / "truth" / f"{package.name}.json"
    if out.exists() and not refresh:
        cached = json.loads(out.read_text())
        if tuple(cached.get("only", ())) == only:
            return cached
    command = [
        str(python),
        str(TRUTH_SCRIPT),
        str(corpus / "src" / package.name),
        package.pkgdir,
        str(out),
        "--timeout",
        str(timeout),
    ]
    if only:
        command += ["--only", *only]
    if (
        shutil.which("unshare")
        and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    ):
        command = ["unshare", "-rn", *command]  # no network: nothing can be downloaded
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": python_path(corpus, package)}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=tempfile.gettempdir())
    print(f"  truth for {package.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return json.loads(out.read_text())


def python_path(corpus: Path, package: Package) -> str:
    return os.pathsep.join(str(corpus / "src" / need) for need in package.needs)


# ------------------------------------------------------------------------- paramlens


def run_paramlens(
    corpus: Path,
    python: Path,
    package: Package,
    only: tuple[str, ...],
    warm: bool = True,
    shapes: bool = True,
    out_dir: Path | None = None,
) -> dict:
    """Cold (empty cache) then warm (the cache the cold run filled); outputs merged over
    targets, kept in ``out_dir`` (default: the corpus's ``paramlens/``)."""
    base = corpus / "src" / package.name / package.pkgdir
    targets = [base / sub for sub in only] if only else [base]
    paramlens = Path(sys.executable).parent / "paramlens"
    cache = Path(tempfile.mkdtemp(prefix="paramlens-corpus-cache-"))
    env = {
        "PARAMLENS_CACHE_DIR": str(cache),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": python_path(corpus, package),
    }
    models: list[dict] = []
    errors: list = []
    seconds: dict[str, float | None] = {"cold": 0.0, "warm": 0.0 if warm else None}
    codes: list[int] = []
    for target in targets:
        command = [
            str(paramlens),
            "summary",
            str(target),
            "--format",
            "json",
            "--python",
            str(python),
            *(() if shapes else ("--no-shapes",)),
        ]
        for phase in ("cold", "warm") if warm else ("cold",):
            run = measure(command, env)
            seconds[phase] = (seconds[phase] or 0.0) + run.seconds
            if phase == "warm":
                continue
            codes.append(run.returncode)
            try:
                report = json.loads(run.stdout)
            except ValueError:
                errors.append(
                    {
                        "target": str(target),
                        "returncode": run.returncode,
                        "stderr": run.stderr[-2000:],
                    }
                )
                continue
            for model in report.get("models", []):
                model.pop("layers", None)  # not needed here, and large
                model.pop("tree", None)
                models.append(model)
            errors.extend(report.get("errors", []))
    shutil.rmtree(cache, ignore_errors=True)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result = {
        "commit": commit,
        "models": models,
        "errors": errors,
        "seconds": seconds,
        "returncodes": codes,
    }
    out = (out_dir or corpus / "paramlens") / f"{package.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


# -------------------------------------------------------------------------- compare


def normal_ctor(text: str) -> str:
    """``mod.Cls(a, b=1)`` and ``Cls(a, b=1)`` compare equal."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return text.strip()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node.func = ast.Name(node.func.attr)
    return ast.unparse(tree)


def qualify(root: Path, file: str, name: str) -> str:
    rel = Path(file).resolve().relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([*parts, name])


def short_message(error: dict) -> str:
    return " ".join(str(error.get("message", "")).split())[:160]


@dataclass
class Row:
    name: str
    found: int = 0
    pl_classes: int = 0
    reachable: int = 0
    built: int = 0
    figures: int = 0
    compared: int = 0
    wrong: list[str] = field(default_factory=list)
    missed: list[tuple[str, str, str]] = field(default_factory=list)  # qual, kind, message
    cold: float = 0.0
    warm: float | None = 0.0
    truth_seconds: float = 0.0
    factories_truth: int = 0
    factories_built: int = 0
    extra: list[str] = field(default_factory=list)  # built by paramlens, not by the truth
    example_only: list[str] = field(default_factory=list)  # figures from example sizes only
    kinds: Counter[str] = field(default_factory=Counter)  # classes by where their figures came from


def compare(package: Package, root: Path, truth_report: dict, pl: dict) -> tuple[Row, list[dict]]:
    classes = truth_report["classes"]
    factories = truth_report["factories"]
    row = Row(package.name, found=len(classes), truth_seconds=truth_report.get("seconds", 0.0))
    row.reachable = sum(1 for e in classes.values() if e["reachable"])
    row.factories_truth = sum(1 for e in factories.values() if "params" in e)
    row.cold, row.warm = pl["seconds"]["cold"], pl["seconds"]["warm"]
    built: set[str] = set()
    figures: set[str] = set()
    class_results: dict[str, dict] = {}
    failures: list[dict] = []
    for model in pl["models"]:
        try:
            qual = qualify(root, model["file"], model["name"])
        except ValueError:
            continue
        kind = model.get("kind", "class")
        error = model.get("error")
        if kind == "factory":
            if error is None:
                row.factories_built += 1
                if model.get("model_class"):
                    figures.add(model["model_class"])
                expected = factories.get(qual, {}).get("params")
                if expected is not None:
                    row.compared += 1
                    if expected != model.get("total_params"):
                        row.wrong.append(f"{qual}: {model.get('total_params'):,} vs {expected:,}")
            continue
        row.pl_classes += 1
        class_results[qual] = model
        if model.get("instances"):
            figures.add(qual)
        if error is None:
            built.add(qual)
            figures.add(qual)
            configs = classes.get(qual, {}).get("configs", {})
            ctor = normal_ctor(model.get("ctor") or "")
            for key, value in configs.items():
                if not key.startswith("factory:") and normal_ctor(key) == ctor:
                    row.compared += 1
                    if value["params"] != model.get("total_params"):
                        row.wrong.append(
                            f"{qual} {ctor}: {model.get('total_params'):,} vs {value['params']:,}"
                        )
                    break
    row.kinds = classify(pl["models"])
    row.example_only = sorted(
        qualify(root, m["file"], m["name"])
        for m in pl["models"]
        if m.get("kind", "class") == "class"
        and classify([m])["example"]
        and m["model_class"]
        not in {
            c["model_class"]
            for c in pl["models"]
            if c.get("kind") in ("factory", "config") and c.get("error") is None
        }
    )
    row.built = len(built & set(classes))
    row.extra = sorted(q for q in built if q in classes and not classes[q]["reachable"])
    row.figures = len(figures & set(classes))
    for qual, entry in classes.items():
        # a bug to fix: a class that builds directly (Cls(), Cls(Config()), a call site) that paramlens
        # did not build, or a class reachable only through factories that got no figures at all
        direct = any(not key.startswith("factory:") for key in entry["configs"])
        if not entry["reachable"] or qual in built or (not direct and qual in figures):
            continue
        model = class_results.get(qual)
        if model is None:
            kind, message = "not-found", "paramlens reported no model for this class"
        else:
            error = model.get("error") or {}
            kind, message = error.get("kind", "?"), short_message(error)
        row.missed.append((qual, kind, message))
        failures.append(
            {
                "package": package.name,
                "class": qual,
                "kind": kind,
                "message": message,
                "where": f"{entry['file']}:{entry['line']}",
                "truth": sorted(entry["configs"])[:3],
            }
        )
    return row, failures


def group_key(failure: dict) -> str:
    short = failure["class"].rpartition(".")[2]
    text = re.sub(rf"\b{re.escape(short)}\b", "<Class>", failure["message"])
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\b\d+(\.\d+)?\b", "N", text)
    return f"[{failure['kind']}] {text[:110]}"


def seconds(value: float | None) -> str:
    return f"{value:7.1f}" if value is not None else f"{'-':>7}"


def print_report(rows: list[Row], failures: list[dict], show: int) -> None:
    header = f"{'package':28} {'found':>6} {'pl':>6} {'reach':>6} {'built':>6} {'figs':>6} {'cmp':>5} {'wrong':>5} {'missed':>6} {'fact t/pl':>10} {'cold s':>7} {'warm s':>7}"
    print(header)
    print("-" * len(header))
    total = Row("TOTAL")
    for row in rows:
        print(
            f"{row.name:28} {row.found:6} {row.pl_classes:6} {row.reachable:6} {row.built:6} {row.figures:6} {row.compared:5} {len(row.wrong):5} {len(row.missed):6} {f'{row.factories_truth}/{row.factories_built}':>10} {row.cold:7.1f} {seconds(row.warm)}"
        )
        for field_name in (
            "found",
            "pl_classes",
            "reachable",
            "built",
            "figures",
            "compared",
            "factories_truth",
            "factories_built",
        ):
            setattr(total, field_name, getattr(total, field_name) + getattr(row, field_name))
        total.wrong += row.wrong
        total.missed += row.missed
        total.kinds += row.kinds
        total.cold += row.cold
        total.warm = None if total.warm is None or row.warm is None else total.warm + row.warm
    print("-" * len(header))
    print(
        f"{'TOTAL':28} {total.found:6} {total.pl_classes:6} {total.reachable:6} {total.built:6} {total.figures:6} {total.compared:5} {len(total.wrong):5} {len(total.missed):6} {f'{total.factories_truth}/{total.factories_built}':>10} {total.cold:7.1f} {seconds(total.warm)}"
    )
    if total.found:
        print(
            f"\nclasses with figures: {total.figures}/{total.found} = {100 * total.figures / total.found:.1f}% of all classes found; "
            f"reachable classes built by paramlens: {total.built}/{total.reachable}"
            if total.reachable
            else ""
        )
    if total.pl_classes:
        example = total.kinds["example"]
        print(
            f"classes with figures from example arguments only: {example}/{total.pl_classes}"
            f" = {100 * example / total.pl_classes:.1f}% of class results; from real arguments:"
            f" {total.kinds['real']}, by source: "
            + ", ".join(
                f"{k[6:]} {v}" for k, v in sorted(total.kinds.items()) if k.startswith("real: ")
            )
        )
    print(
        "\nfound = nn.Module classes (truth's ast scan); pl = class results paramlens reported; reach = buildable in plain torch;"
        " built = paramlens built it as a class; figs = built, or via a factory, or as instances; cmp/wrong = totals compared"
        " with the truth for the same ctor/factory, and how many differ; missed = reachable but not built (for a class reachable only through factories: no figures at all); fact t/pl = factories"
        " built by the truth / by paramlens"
    )
    for row in rows:
        if row.wrong:
            print(f"\n{row.name}: wrong totals (paramlens vs truth)")
            for line in row.wrong[:show]:
                print(f"  {line}")
        if row.extra:
            print(
                f"\n{row.name}: built by paramlens but not reachable per the truth ({len(row.extra)}): {', '.join(row.extra[:show])}"
            )
        if row.example_only:
            print(
                f"\n{row.name}: figures from example arguments only ({len(row.example_only)}): {', '.join(row.example_only[:show])}"
            )
        if row.missed:
            print(f"\n{row.name}: reachable but not built ({len(row.missed)})")
            for qual, kind, message in row.missed[:show]:
                print(f"  {qual}: [{kind}] {message}")
    groups: dict[str, list[dict]] = defaultdict(list)
    for failure in failures:
        groups[group_key(failure)].append(failure)
    if groups:
        print("\nparamlens failures on reachable classes, grouped:")
        for key, members in sorted(groups.items(), key=lambda kv: -len(kv[1]))[: show * 3]:
            packages = Counter(m["package"] for m in members)
            example = members[0]
            print(
                f"  {len(members):4}  {key}\n        e.g. {example['where']} ({example['class']}); {dict(packages)}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("/work/corpus"))
    parser.add_argument("--packages", default="", help="comma-separated names (default: all)")
    parser.add_argument(
        "--full", action="store_true", help="measure all of transformers and diffusers"
    )
    parser.add_argument(
        "--refresh-truth", action="store_true", help="recompute the cached ground truth"
    )
    parser.add_argument(
        "--truth-timeout", type=float, default=60, help="seconds per ground-truth build"
    )
    parser.add_argument(
        "--truth-only",
        action="store_true",
        help="fetch and compute the truth, do not run paramlens",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the last paramlens outputs in paramlens/ instead of running it",
    )
    parser.add_argument(
        "--no-warm", action="store_true", help="skip the second (warm cache) paramlens run"
    )
    parser.add_argument("--show", type=int, default=8, help="names listed per package")
    parser.add_argument(
        "--no-shapes", action="store_true", help="parameters only: paramlens --no-shapes"
    )
    parser.add_argument("--json", type=Path, help="save the numbers there")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder of the paramlens outputs, written or (--reuse) read"
        " (default: paramlens/ in the corpus; one per checkout measured side by side)",
    )
    args = parser.parse_args()
    wanted = [p for p in args.packages.split(",") if p]
    unknown = set(wanted) - {p.name for p in PACKAGES}
    if unknown:
        parser.error(f"unknown packages: {', '.join(sorted(unknown))}")
    selected = [p for p in PACKAGES if not wanted or p.name in wanted]
    corpus = args.corpus.resolve()
    for package in {n for p in selected for n in p.needs} | {p.name for p in selected}:
        fetch(corpus, next(p for p in PACKAGES if p.name == package))
    python = ensure_venv(corpus)
    rows: list[Row] = []
    failures: list[dict] = []
    for package in selected:
        only = (
            package.measured if args.full or package.name not in SUBSETS else SUBSETS[package.name]
        )
        if args.full and package.name in SUBSETS:
            only = ()
        print(f"{package.name}: truth", file=sys.stderr)
        truth_report = truth(corpus, python, package, only, args.refresh_truth, args.truth_timeout)
        if args.truth_only:
            continue
        saved = (args.out or corpus / "paramlens") / f"{package.name}.json"
        if args.reuse and saved.exists():
            pl = json.loads(saved.read_text())
        else:
            print(f"{package.name}: paramlens", file=sys.stderr)
            pl = run_paramlens(
                corpus,
                python,
                package,
                only,
                warm=not args.no_warm,
                shapes=not args.no_shapes,
                out_dir=args.out,
            )
        row, failed = compare(package, corpus / "src" / package.name, truth_report, pl)
        rows.append(row)
        failures.extend(failed)
    if rows:
        print_report(rows, failures, args.show)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": [vars(r) for r in rows], "failures": failures}, indent=1, default=str
            )
        )


if __name__ == "__main__":
    main()
