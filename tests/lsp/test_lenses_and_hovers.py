"""What a user sees in the editor: lenses, hovers and the summary command on the seed file."""

from __future__ import annotations

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import eventually, lens_titles, lenses, open_file

SEED = FIXTURES / "recipe/models.py"


async def hover(client: LanguageClient, document_uri: str, line: int) -> str:
    """Hover text at 1-based ``line``."""
    result = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(document_uri), lsp.Position(line - 1, 12))
    )
    assert result is not None and isinstance(result.contents, lsp.MarkupContent)
    return result.contents.value


async def test_lenses_show_the_seed_figures_on_their_lines(client: LanguageClient) -> None:
    doc = open_file(client, SEED)
    shown = await lens_titles(client, doc)
    assert shown[6] == (
        "NeuralNetwork · 669,706 params · 669,706 trainable · 2.6 MB"
        " · 668.67K mult-adds @ [1, 784] (guessed input) · peak 12.8 MB @ batch 1 (optimizer)"
    )
    assert shown[24] == (
        "CNN · 1,199,882 params · 1,199,882 trainable · 4.6 MB"
        " · 11.99M mult-adds @ [1, 1, 28, 28] (guessed input) · peak 22.9 MB @ batch 1 (optimizer)"
    )
    assert shown[11] == "Linear(784 -> 512) · 401,920 · → [1, 512]"
    assert shown[13] == "Linear(512 -> 512) · 262,656 · → [1, 512]"
    assert shown[15] == "Linear(512 -> 10) · 5,130 · → [1, 10]"
    assert shown[28] == "Conv2d(1 -> 32, 3x3) · 320 · → [1, 32, 26, 26]"
    assert shown[30] == "Conv2d(32 -> 64, 3x3) · 18,496 · → [1, 64, 24, 24]"
    assert shown[36] == "Linear(9216 -> 128) · 1,179,776 · → [1, 128]"
    assert shown[38] == "Linear(128 -> 10) · 1,290 · → [1, 10]"
    assert shown[12] == "ReLU · → [1, 512]"  # no parameters: its output alone
    class_lens = next(lens for lens in await lenses(client, doc) if lens.range.start.line == 5)
    assert class_lens.command is not None
    assert class_lens.command.command == "paramlens.summary"
    assert list(class_lens.command.arguments or ()) == [doc, "NeuralNetwork"]
    assert client.lens_refreshes >= 1  # type: ignore[attr-defined]
    assert client.progress_reports  # the first analysis (worker start) reported progress
    [reports] = client.progress_reports.values()
    assert reports[0].kind == "begin" and reports[-1].kind == "end"
    assert [s.state for s in client.status][-1] == "ready"  # type: ignore[attr-defined]
    assert list(client.diagnostics[doc]) == []


async def test_hovers_give_exact_shapes_and_shares(client: LanguageClient) -> None:
    doc = open_file(client, SEED)
    await lens_titles(client, doc)
    layer = await hover(client, doc, 11)
    assert "**Linear(784 -> 512)**: 401,920 parameters" in layer
    assert "| `linear_relu_stack.0.weight` | `[512, 784]` | 401,408 | yes | float32 |" in layer
    assert "60.0% of NeuralNetwork (669,706)" in layer
    cls = await hover(client, doc, 6)
    assert "**NeuralNetwork**: 669,706 parameters" in cls
    assert "| `linear_relu_stack` | Sequential | 669,706 | 100.0% |" in cls
    # the simulated training step (issue 18): 669,706 float32 parameters, gradients, two
    # AdamW states and one foreach temporary each (5 x 2,678,824) and the [1, 784] input
    assert "**Peak training memory: 12.8 MB** (13,397,256 bytes) at batch 1, in optimizer" in cls
    assert "| optimizer state | 5.1 MB | 40.0% |" in cls
    assert "| temporaries | 2.6 MB | 20.0% |" in cls
    assert '| optimizer | AdamW (foreach, as on CUDA) | `optimizer = "sgd"` |' in cls
    assert '| gpu | none | `gpu = "24GB"` |' in cls
    assert "Old sum estimate: 10.2 MB (parameters + gradients + AdamW state" in cls


async def test_the_summary_command_returns_the_table(client: LanguageClient) -> None:
    doc = open_file(client, SEED)
    await lens_titles(client, doc)
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="paramlens.summary", arguments=[doc, "CNN"])
    )
    assert "Layer (type:depth-idx)" in result["text"]
    assert "Total params: 1,199,882" in result["text"]
    assert result["model"]["total_params"] == 1_199_882
    models = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="paramlens.models", arguments=[doc])
    )
    assert models == {"models": [{"name": "NeuralNetwork", "line": 6}, {"name": "CNN", "line": 24}]}


async def test_unsaved_and_untitled_buffers_are_analysed_from_the_editor(
    client: LanguageClient,
) -> None:
    text = "from torch import nn\n\n\nclass Draft(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(3, 4)\n"
    unsaved = open_file(client, FIXTURES / "never_saved.py", text)
    assert not (FIXTURES / "never_saved.py").exists()
    shown = await lens_titles(client, unsaved)
    assert shown[7] == "Linear(3 -> 4) · 16"
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem("untitled:Untitled-1", "python", 1, text)
        )
    )
    shown = await lens_titles(client, "untitled:Untitled-1")
    assert shown[4] == "Draft · 16 params · 16 trainable · 64 B"


async def test_factories_and_building_blocks_on_real_shaped_code(client: LanguageClient) -> None:
    doc = open_file(client, FIXTURES / "zoo/models/resnet.py")
    # the classes' lenses come first, then the factories' (a second job)
    first = await lens_titles(client, doc)
    assert first[34].startswith("ResNet · 676,682 params")

    async def with_factories() -> dict[int, str] | None:
        shown = await lens_titles(client, doc)
        return shown if 55 in shown else None

    shown = await eventually(with_factories)
    assert shown[55].startswith("ResNet18 → ResNet · 676,682 params · 676,682 trainable")
    assert shown[63].startswith("resnet_tiny → ResNet · 307,274 params")
    assert shown[34] == (
        "ResNet · 676,682 params · 676,682 trainable · 2.6 MB"
        " · as called at zoo/models/resnet.py:56 · 3 factory configurations"
    )
    # BasicBlock needs arguments: its lens shows what its instances weigh, not a complaint
    assert shown[12] == "BasicBlock · 73,984 each · 2 in ResNet · 2 other sizes · in 3 more models"
    block = await hover(client, doc, 12)
    assert "| 73,984 | 8 | ResNet (2), ResNet18 (2), ResNet34 (3), resnet_tiny (1) |" in block
    assert "| 295,424 | 5 | ResNet (1), ResNet18 (1), ResNet34 (3) |" in block
    resnet = await hover(client, doc, 34)
    assert "| `ResNet34()` | 1,341,514 |" in resnet
    assert not [d for d in client.diagnostics[doc] if d.code == "needs-args"]
