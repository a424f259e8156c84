"""Pure rendering: numbers, lens titles, the summary table."""

import dataclasses

from paramlens import render
from paramlens.worker.protocol import LayerEntry, LineSize, ModelResult, ParamInfo, TreeRow


def test_counts_are_exact_below_ten_million_then_abbreviated() -> None:
    assert render.format_count(669_706) == "669,706"
    assert render.format_count(9_999_999) == "9,999,999"
    assert render.format_count(124_439_808) == "124.4M"
    assert render.format_count(85_054_464) == "85.1M"
    assert render.format_count(70_553_706_496) == "70.55B"


def test_sizes_use_binary_megabytes() -> None:
    assert render.format_bytes(669_706 * 4) == "2.6 MB"
    assert render.format_bytes(512) == "512 B"


def entry(count: int, params: int, describe: str, type_: str) -> LayerEntry:
    weight = ParamInfo("stack.0.weight", (512, 784), 401_408, True, "float32")
    return LayerEntry("/w/m.py", 9, type_, count, params, (weight,), describe, trainable=params)


def test_layer_lens_titles() -> None:
    assert render.render_layer_lens(entry(1, 401_920, "Linear(784 -> 512)", "Linear")) == (
        "Linear(784 -> 512) · 401,920"
    )
    assert render.render_layer_lens(entry(12, 85_054_464, "Block", "Block")) == "12 x Block · 85.1M"
    assert render.render_layer_lens(entry(1, 10, "Linear(1 -> 5)", "Linear"), stale=True).endswith(
        "(stale)"
    )


def test_a_line_of_several_sizes_and_a_line_of_an_example_build() -> None:
    sizes = tuple(
        LineSize(f"Conv2d({c} -> {c}, 3x3)", n, c * c * 9) for c, n in ((8, 1), (16, 2), (32, 3))
    )
    total = sum(s.count * s.params for s in sizes)
    mixed = dataclasses.replace(entry(6, total, "Conv2d", "Conv2d"), sizes=sizes)
    assert render.render_layer_lens(mixed) == (
        "Conv2d(8 -> 8, 3x3) · 576 | 2 x Conv2d(16 -> 16, 3x3) · 4,608 | +1 more size"
    )
    hover = render.render_line_hover(dataclasses.replace(mixed, model="Net"), None)
    assert hover.startswith(f"**6 x Conv2d**: {total:,} parameters (6 instances of 3 sizes)")
    assert "| `Conv2d(32 -> 32, 3x3)` | 3 | 9,216 |" in hover
    assert "Measured inside Net." in hover
    example = dataclasses.replace(entry(1, 12, "Linear(3 -> 3)", "Linear"), example=True)
    assert render.render_layer_lens(example) == "Linear(3 -> 3) · 12 · example sizes"
    relu = LayerEntry("/w/m.py", 9, "ReLU", 1, 0, (), "ReLU", example=True)
    assert render.render_layer_lens(relu) == "ReLU · example sizes"


def mlp() -> ModelResult:
    tree = (
        TreeRow("", "NeuralNetwork", 0, 669_706, 0, (), "Partial", leaf=False),
        TreeRow("flatten", "Flatten", 1, 0, 0, (), "--", 9, "/w/m.py"),
        TreeRow("stack", "Sequential", 1, 669_706, 0, (), "Partial", 10, "/w/m.py", leaf=False),
        TreeRow(
            "stack.0", "Linear", 2, 401_920, 401_920, ((512, 784), (512,)), "Partial", 11, "/w/m.py"
        ),
        TreeRow("stack.1", "ReLU", 2, 0, 0, (), "--", 12, "/w/m.py"),
    )
    return ModelResult(
        "NeuralNetwork",
        "/w/m.py",
        6,
        669_706,
        268_298,
        401_408,
        0,
        2_678_824,
        0,
        ("float32",),
        tree=tree,
    )


def test_model_lens_title() -> None:
    assert render.render_model_lens(mlp()) == (
        "NeuralNetwork · 669,706 params · 268,298 trainable · 2.6 MB"
    )


def test_summary_table_shape_and_totals() -> None:
    table = render.render_summary_table(mlp(), depth=3)
    lines = table.splitlines()
    headers = [h.strip() for h in lines[1].split("   ") if h.strip()]
    assert headers[:3] == ["Layer (type:depth-idx)", "Param # (with children)", "Own param shapes"]
    assert lines[3].split()[:3] == ["NeuralNetwork", "669,706", "--"]  # the root: everything
    assert "├─Sequential: 1-2" in table
    assert "│    ├─Linear: 2-1" in table
    linear = next(line for line in lines if "Linear: 2-1" in line)
    assert "401,920" in linear and "[512, 784], [512]" in linear and "m.py:11" in linear
    assert "Total params: 669,706" in table
    assert "Non-trainable params: 401,408" in table
    collapsed = render.render_summary_table(mlp(), depth=1)
    assert "Linear" not in collapsed
    assert "669,706" in next(line for line in collapsed.splitlines() if "Sequential" in line)


def test_a_line_longer_than_the_alignment_column_keeps_two_spaces_before_its_figures() -> None:
    long_line = "        self.fc = nn.Linear(" + "x" * 100 + ")"
    source = f"class Net:\n    short = 1\n{long_line}\n"
    layer = LayerEntry("/w/m.py", 3, "Linear", 1, 9, (), "Linear(2 -> 3)", 9)
    out = render.render_annotated(source, [], {3: layer}).splitlines()
    assert out[2] == f"3  {long_line}  # Linear(2 -> 3) 9"


def test_frozen_and_tied_parameters_are_marked_in_lenses_and_hovers() -> None:
    head = LayerEntry(
        "/w/m.py",
        72,
        "Linear",
        1,
        38_597_376,
        (),
        "Linear(768 -> 50257)",
        38_597_376,
        shared=38_597_376,
        tied=(("/w/m.py", 66),),
    )
    assert render.render_layer_lens(head) == (
        "Linear(768 -> 50257) · 38.6M (tied with line 66, counted there)"
    )
    assert "*tied with line 66, counted there*" in render.render_line_hover(head, None)
    frozen = LayerEntry("/w/m.py", 8, "Linear", 1, 10, (), "Linear(4 -> 2)", trainable=8)
    assert render.render_layer_lens(frozen) == "Linear(4 -> 2) · 10 (2 frozen)"
    all_frozen = LayerEntry("/w/m.py", 7, "Embedding", 1, 40, (), "Embedding(10, 4)", 0)
    assert render.render_layer_lens(all_frozen) == "Embedding(10, 4) · 40 (frozen)"


def test_parameters_of_a_module_with_children_get_rows_of_their_own() -> None:
    tree = (
        TreeRow(
            "",
            "Net",
            0,
            16_641,
            1,
            ((1,),),
            "True",
            leaf=False,
            own_names=("scale",),
            own_trainable=(True,),
        ),
        TreeRow(
            "attn",
            "MultiheadAttention",
            1,
            16_640,
            12_480,
            ((192, 64), (192,)),
            "True",
            9,
            "/w/m.py",
            leaf=False,
            own_names=("in_proj_weight", "in_proj_bias"),
            own_trainable=(True, False),
        ),
        TreeRow(
            "attn.out_proj", "Linear", 2, 4_160, 4_160, ((64, 64), (64,)), "True", 9, "/w/m.py"
        ),
    )
    scale = ParamInfo("scale", (1,), 1, True, "float32")
    layers = (LayerEntry("/w/m.py", 8, "Parameter", 1, 1, (scale,), "Parameter", trainable=1),)
    net = ModelResult("Net", "/w/m.py", 5, 16_641, 16_641, 0, 0, 0, 0, (), layers=layers, tree=tree)
    rows = [line.split() for line in render.render_summary_table(net).splitlines()]
    assert ["Net", "16,641", "--", "True"] in rows
    assert ["├─scale", "(Parameter)", "1", "[1]", "True", "m.py:8"] in rows
    assert ["├─MultiheadAttention:", "1-1", "16,640", "--", "True", "m.py:9"] in rows
    assert ["│", "├─in_proj_bias", "(Parameter)", "192", "[192]", "False"] in rows
    assert ["│", "├─Linear:", "2-1", "4,160", "[64,", "64],", "[64]", "True", "m.py:9"] in rows
    markdown = render.render_summary_markdown(net)
    assert "| Layer (type:depth-idx) | Param # (with children) | Own param shapes |" in markdown
    assert "| &nbsp;&nbsp;scale (Parameter) | 1 | [1] | True | m.py:8 |" in markdown


def test_inline_shapes_come_from_the_best_founded_run_of_a_line() -> None:
    from paramlens.worker.protocol import ForwardInfo, InlineShape

    def ran(
        name: str, shape: str, *, example: bool = False, guessed: bool = False, params: int = 1
    ) -> ModelResult:
        line = InlineShape("m.py", 7, 9, "x", (shape,))
        forward = ForwardInfo(
            input="torch.randn(...)", input_source="?", guessed=guessed, lines=(line,)
        )
        return ModelResult(name, "m.py", 1, total_params=params, example=example, forward=forward)

    block_alone = ran("Block", "[1, 3, 224, 224]", example=True)  # example arguments
    in_gpt = ran("GPT", "[1, 16, 768]", guessed=True, params=100)
    small = ran("Tiny", "[1, 16, 32]", guessed=True, params=10)
    [(key, seen)] = render.inline_shapes_at([block_alone, small, in_gpt], "m.py").items()
    assert key == (7, 9, "x")
    assert seen.shapes == ["[1, 16, 768]"]  # real arguments, then the largest model
    assert render.inline_shapes([block_alone, small, in_gpt]) == {7: "x: [1, 16, 768]"}


def test_json_output_is_exactly_the_json_of_the_plain_values() -> None:
    # the CLI encodes with json's C encoder (dataclasses through `default`): the same
    # document, key for key, as encoding the plain values protocol.to_json makes
    import json

    from paramlens.worker import protocol
    from paramlens.worker.protocol import ErrorInfo, ForwardInfo, InlineShape

    forward = ForwardInfo(
        input="torch.randn(1, 8)",
        input_source="given",
        output_shape="[1, 4]",
        macs=32,
        lines=(InlineShape("/w/m.py", 7, 9, "x", ("[1, 4]",)),),
    )
    broken = ModelResult("Broken", "/w/m.py", 9, error=ErrorInfo("ValueError: no", "/w/m.py", 11))
    models = [mlp(), dataclasses.replace(mlp(), name="Shaped", forward=forward), broken]
    extra = {
        "root": "/w",
        "isolation": ["seccomp"],
        "errors": [ErrorInfo("SyntaxError", "/w/a.py", 3)],
    }
    plain = protocol.to_json({"version": 1, **extra, "models": models})
    assert plain["models"][1]["forward"]["lines"][0]["shapes"] == ["[1, 4]"]
    for indent in (None, 2):
        assert render.render_json(models, extra, indent) == json.dumps(plain, indent=indent)


def test_the_command_line_offers_every_output_format_render_has() -> None:
    # the CLI parses its arguments before render is imported (that import waits until the
    # worker has started): its list of formats must still be render's
    from paramlens import cli

    assert tuple(f.value for f in render.Format) == cli.FORMATS
