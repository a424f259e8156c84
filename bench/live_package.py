"""Live editing inside a big package: an edit typed in timm's vision_transformer.py, warm server.

    python -m bench.live_package [--timm DIR] [--rounds 5] [--transformers DIR] [--log FILE]

``--timm`` is the folder holding timm's ``timm/`` package (from its wheel: ``pip download
timm==1.0.31 --no-deps`` and unzip; default /work/ab/src/timm). It is copied to a temporary
workspace; the server runs with the on-disk cache off and its default settings (debounce
500 ms), over stdio, with the interpreter running this script (so the same script measures
another checkout when run with that checkout's interpreter).

After opening the file and waiting for its whole first analysis (the warm-up), each round
sends one edit as the editor would (didChange, never saved) and measures from it:

- ``VisionTransformer`` edit: ``embed_dim: int = 768`` changed to another width, until the
  ``VisionTransformer`` lens shows new figures, not stale (target < 1 s; its training
  step's peak may still be on its way, the lens saying ``peak…``), until it has that peak
  too, and until the analysis of the whole file is over, its 163 factories included
  (status ``ready``, < 10 s);
- ``Block`` edit: its MLP's hidden width changed, until the ``Block`` lens and the
  ``VisionTransformer`` lens both show new figures, not stale (< 1.5 s); then the whole file;
- nanoGPT (fixtures/gpt/model.py): ``n_embd`` changed, until the ``GPT`` lens is new (< 1 s);
- with ``--transformers DIR`` (the folder holding ``transformers/``, from its wheel),
  ``LlamaConfig``'s ``hidden_size`` default edited in ``configuration_llama.py`` while
  ``modeling_llama.py`` is open too, until its ``LlamaModel`` and ``LlamaForCausalLM``
  lenses are new (< 1 s). ``--no-timm`` measures that alone. ``--transformers-venv DIR``: a
  virtual environment with transformers' requirements (``huggingface_hub``, ``safetensors``,
  ``tokenizers``...) and torch, for the worker: without them every LLaMA class is an error.

Each edit makes a text not seen before (no cache can answer). Medians over ``--rounds``.
``--log FILE`` writes the server's log during each edit, in ms from the edit, with the
moments the watched lenses became new and the file was ready: where the time went.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from lsprotocol import types as lsp
from paramlens import render

from bench.common import FIXTURES
from bench.lsp import Client, code_lenses, open_doc, start, stop

SHAPES_PENDING = render.SHAPES_PENDING
# what a staged lens says until its step's peak comes (older checkouts never say it)
STEP_PENDING = getattr(render, "STEP_PENDING", "peak…")
TIMEOUT_S = 180.0
VIT_DIMS = [384, 576, 192, 480, 672, 288, 864, 960]  # divisible by its 12 heads
GPT_DIMS = [384, 512, 640, 896, 1024, 256, 1152, 1280]


async def titles(client: Client, uri: str) -> dict[str, str]:
    """Each class lens's title, by the class it names (its first word)."""
    found = {}
    for lens in await code_lenses(client, uri):
        if lens.command and " · " in lens.command.title:
            found.setdefault(lens.command.title.split(" ")[0], lens.command.title)
    return found


def new(title: str | None, before: str | None, peak: bool) -> bool:
    """A lens with new figures, not stale, shapes included; with ``peak``, the training
    step's peak too (a staged lens says ``peak…`` until it comes)."""
    return (
        title is not None
        and title != before
        and "stale" not in title
        and SHAPES_PENDING not in title
        and not (peak and STEP_PENDING in title)
    )


async def until_new(
    client: Client, uri: str, names: list[str], before: dict[str, str], peak: bool
) -> None:
    deadline = time.perf_counter() + TIMEOUT_S
    while time.perf_counter() < deadline:
        now = await titles(client, uri)
        if all(new(now.get(n), before.get(n), peak) for n in names):
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no new lens for {names}: {now}")


async def until_ready(client: Client, name: str, count: int) -> None:
    deadline = time.perf_counter() + TIMEOUT_S
    while client.ready.get(name, 0) < count:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{name} was not analysed again")
        await asyncio.sleep(0.01)


def change(client: Client, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


TIMELINE: list[str] = []  # with --log: the server's log of each round, in ms from the edit


def timeline(client: Client, title: str, started: float, marks: dict[str, float]) -> None:
    """The server's log lines since ``started`` and the bench's own marks, by time."""
    events = [(t, m) for t, m in client.logs if t >= started]
    events += [(t, f"** {name}") for name, t in marks.items()]
    TIMELINE.append(f"## {title}")
    TIMELINE.extend(f"{(t - started) * 1000:8.0f} ms  {m}" for t, m in sorted(events))


async def edit_rounds(
    client: Client,
    uri: str,
    file_name: str,
    texts: list[str],
    watched: list[str],
    whole: bool,
    shown: tuple[str, str] | None = None,
) -> tuple[list[float], list[float], list[float]]:
    """Seconds from each edit to new lenses of ``watched`` (their peak may still be on its
    way), to their final lenses (the peak included), and to the file's analysis end. The
    lenses and the analysis are those of the edited file, or of ``shown`` (another open
    file's URI and name, that imports the edited one)."""
    lens_s, peak_s, whole_s = [], [], []
    version = 100
    shown_uri, file_name = shown or (uri, file_name)
    for text in texts:
        before = await titles(client, shown_uri)
        ready = client.ready.get(file_name, 0)
        version += 1
        started = time.perf_counter()
        change(client, uri, version, text)
        await until_new(client, shown_uri, watched, before, peak=False)
        lens_s.append(time.perf_counter() - started)
        await until_new(client, shown_uri, watched, before, peak=True)
        peak_s.append(time.perf_counter() - started)
        await until_ready(client, file_name, ready + 1)
        if whole:
            whole_s.append(time.perf_counter() - started)
        marks = {f"{'+'.join(watched)} lens new": started + lens_s[-1]}
        marks[f"{'+'.join(watched)} lens with its peak"] = started + peak_s[-1]
        marks["file ready"] = time.perf_counter()
        timeline(client, f"{file_name}: edit {len(lens_s)} of {'+'.join(watched)}", started, marks)
        await asyncio.sleep(0.3)
    return lens_s, peak_s, whole_s


def summary(label: str, values: list[float], target: float | None) -> str:
    shown = ", ".join(f"{v:.2f}" for v in values)
    goal = f" (target < {target:g} s)" if target else ""
    return f"{label}: median {statistics.median(values):.2f} s{goal}  [{shown}]"


LLAMA_WIDTHS = [2048, 3072, 1024, 2560, 3584, 1536, 4608, 5120]  # divisible by 32 heads


async def llama(transformers: Path, rounds: int, venv: Path | None) -> None:
    """transformers' modeling_llama.py open beside configuration_llama.py, whose
    ``LlamaConfig.hidden_size`` default is edited (never saved): until the lenses of
    ``LlamaModel`` and ``LlamaForCausalLM`` (built from that config) are new, with figures
    (an interpreter without transformers' requirements gives them errors: ``venv``, one
    that has them, becomes the workspace's ``.venv``)."""
    work = Path(tempfile.mkdtemp(prefix="paramlens-live-"))
    shutil.copytree(transformers / "transformers", work / "ws/transformers")
    if venv is not None:
        (work / "ws/.venv").symlink_to(venv.resolve())
    folder = work / "ws/transformers/models/llama"
    config, modeling = folder / "configuration_llama.py", folder / "modeling_llama.py"
    source = config.read_text()
    default = "    hidden_size: int = 4096\n"
    assert default in source
    client = await start(work / "ws")
    started = time.perf_counter()
    config_uri = open_doc(client, config)
    modeling_uri = open_doc(client, modeling)
    await until_ready(client, modeling.name, 1)
    print(f"transformers modeling_llama.py opened: {time.perf_counter() - started:.1f} s")
    before = await titles(client, modeling_uri)
    for name in ("LlamaModel", "LlamaForCausalLM"):
        print(f"  {before.get(name)}")  # figures, not an error: the interpreter has its needs
    texts = [
        source.replace(default, default.replace("4096", str(w)), 1) for w in LLAMA_WIDTHS[:rounds]
    ]
    watched = ["LlamaModel", "LlamaForCausalLM"]
    shown = (modeling_uri, modeling.name)
    lens, peak, whole = await edit_rounds(
        client, config_uri, config.name, texts, watched, True, shown
    )
    print(
        summary("edit of LlamaConfig's hidden_size -> LlamaModel's, LlamaForCausalLM's", lens, 1.0)
    )
    print(summary("  -> those lenses with their step's peak", peak, None))
    print(summary("  -> modeling_llama.py's whole analysis", whole, None))
    await stop(client)
    shutil.rmtree(work, ignore_errors=True)


async def run(timm: Path, rounds: int, log: Path | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="paramlens-live-"))
    shutil.copytree(timm / "timm", work / "ws/timm")
    shutil.copytree(FIXTURES / "gpt", work / "gpt")
    vit = work / "ws/timm/models/vision_transformer.py"
    source = vit.read_text()

    client = await start(work / "ws")
    started = time.perf_counter()
    uri = open_doc(client, vit)
    await until_ready(client, vit.name, 1)
    print(
        f"timm vision_transformer.py opened, whole first analysis: {time.perf_counter() - started:.1f} s"
    )

    dims = VIT_DIMS[:rounds]
    texts = [source.replace("embed_dim: int = 768,", f"embed_dim: int = {d},", 1) for d in dims]
    lens, peak, whole = await edit_rounds(client, uri, vit.name, texts, ["VisionTransformer"], True)
    print(summary("edit of VisionTransformer's embed_dim -> its lens", lens, 1.0))
    print(summary("  -> that lens with its step's peak", peak, None))
    print(summary("  -> the whole file's lenses (factories included)", whole, 10.0))

    hidden = "            hidden_features=int(dim * mlp_ratio),\n"
    assert source.count(hidden) >= 1
    texts = [
        source.replace(hidden, hidden.replace("mlp_ratio)", f"mlp_ratio) + {8 * (i + 1)}"), 1)
        for i in range(rounds)
    ]
    lens, peak, whole = await edit_rounds(
        client, uri, vit.name, texts, ["Block", "VisionTransformer"], True
    )
    print(summary("edit inside Block -> Block's and VisionTransformer's lenses", lens, 1.5))
    print(summary("  -> those lenses with their step's peak", peak, None))
    print(summary("  -> the whole file's lenses (factories included)", whole, 10.0))
    await stop(client)

    client = await start(work / "gpt")
    gpt = work / "gpt/model.py"
    gpt_source = gpt.read_text()
    gpt_uri = open_doc(client, gpt)
    await until_ready(client, gpt.name, 1)
    texts = [
        gpt_source.replace("n_embd: int = 768", f"n_embd: int = {d}", 1) for d in GPT_DIMS[:rounds]
    ]
    lens, peak, _ = await edit_rounds(client, gpt_uri, gpt.name, texts, ["GPT"], False)
    print(summary("nanoGPT model.py: edit of n_embd -> GPT's lens", lens, 1.0))
    print(summary("  -> that lens with its step's peak", peak, None))
    await stop(client)
    shutil.rmtree(work, ignore_errors=True)
    if log is not None:
        log.write_text("\n".join(TIMELINE) + "\n")
        print(f"the server's log of each edit, by time: {log}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timm", type=Path, default=Path("/work/ab/src/timm"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--log", type=Path, help="write the server's log of each edit here")
    parser.add_argument(
        "--transformers",
        type=Path,
        help="the folder holding transformers/ (its wheel unzipped): measure its LLaMA too",
    )
    parser.add_argument(
        "--transformers-venv",
        type=Path,
        help="a virtual environment with torch and transformers' requirements (huggingface_hub,"
        " safetensors, tokenizers...): the worker's interpreter for LLaMA",
    )
    parser.add_argument("--no-timm", action="store_true", help="skip timm and nanoGPT")
    args = parser.parse_args()
    if not args.no_timm:
        asyncio.run(run(args.timm, args.rounds, args.log))
    if args.transformers is not None:
        asyncio.run(llama(args.transformers, args.rounds, args.transformers_venv))
        if args.log is not None:
            args.log.write_text("\n".join(TIMELINE) + "\n")


if __name__ == "__main__":
    main()
