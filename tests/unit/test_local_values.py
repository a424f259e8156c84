"""Call sites whose arguments are local values (issue 20): each pattern read statically,
and the conservative cases where a name could hold another value (no call site)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
from paramlens.analysis.calls import call_sites
from paramlens.analysis.local_values import (
    EXPAND_NOTE,
    LOOP_NOTE,
    MAX_LOCALS,
    PARAMETRIZE_NOTE,
)
from paramlens.analysis.model import Target
from paramlens.analysis.reading import read_file


def sites(tmp_path: Path, body: str) -> list[tuple[int, tuple, tuple, str]]:
    """The call sites of ``Net`` in a module made of ``body``: (line, args, kwargs, note)."""
    path = tmp_path / "test_mod.py"
    text = "import pytest\nfrom torch import nn\n\nclass Net(nn.Module):\n    pass\n" + dedent(body)
    path.write_text(text)
    info = read_file(path, text)
    return [
        (s.line - 5, s.args, s.kwargs, s.note)  # lines of ``body``
        for s in call_sites(info)
        if s.target == "test_mod.Net"
    ]


def test_a_name_assigned_a_literal_before_the_call(tmp_path: Path) -> None:
    found = sites(
        tmp_path,
        """
        def build():
            dim = 64
            hidden: int = dim * 4
            a, (b, c) = 1, (2, 3)
            return Net(dim, hidden=hidden), Net(a, b, c)
        """,
    )
    assert found == [(6, (64,), (("hidden", 256),), ""), (6, (1, 2, 3), (), "")]


def test_the_first_loop_value(tmp_path: Path) -> None:
    found = sites(
        tmp_path,
        """
        if __name__ == "__main__":
            for groups, heads in ((1, 1), (2, 4)):
                Net(image_size=32, groups=groups, heads=heads)
            for dims in [2, 3]:
                shape = (3, 1) + (92,) * dims
                Net(dims, shape)
            for depth in range(2, 5):
                Net(depth)
        """,
    )
    assert found == [
        (4, (), (("image_size", 32), ("groups", 1), ("heads", 1)), LOOP_NOTE),
        (7, (2, (3, 1, 92, 92)), (), LOOP_NOTE),
        (9, (2,), (), LOOP_NOTE),
    ]


def test_the_first_parametrize_case(tmp_path: Path) -> None:
    found = sites(
        tmp_path,
        """
        param = pytest.mark.parametrize

        @pytest.mark.parametrize("a,b", [(1, 2), (3, 4)])
        @pytest.mark.parametrize(["c"], [pytest.param(5, id="five"), 6])
        @param("depth", (7, 8))
        def test_net(a, b, c, depth):
            Net(a, b, c=c, depth=depth)
        """,
    )
    assert found == [(8, (1, 2), (("c", 5), ("depth", 7)), PARAMETRIZE_NOTE)]


def test_the_first_parameterized_expand_case_and_a_spread_dict(tmp_path: Path) -> None:
    found = sites(
        tmp_path,
        """
        import unittest
        from parameterized import parameterized

        TEST_CASE_0 = [{"spatial_dims": 2, "channels": (4, 8)}, (1, 1, 8, 8)]
        TEST_CASE_1 = [{"spatial_dims": 3, "channels": (4, 8)}, (1, 1, 8, 8, 8)]
        CASES = [TEST_CASE_0, TEST_CASE_1]

        class TestNet(unittest.TestCase):
            @parameterized.expand(CASES)
            def test_shape(self, input_param, input_shape):
                net = Net(**input_param)

            def test_kernel(self):
                args_dict = {"spatial_dims": 2, "channels": (4, 8)}
                sizes = (1, 2)
                Net(*sizes, **args_dict, kernel_size=5)
        """,
    )
    assert found == [
        (12, (), (("spatial_dims", 2), ("channels", (4, 8))), EXPAND_NOTE),
        (17, (1, 2), (("spatial_dims", 2), ("channels", (4, 8)), ("kernel_size", 5)), ""),
    ]


def test_a_case_read_value_by_value(tmp_path: Path) -> None:
    # MONAI: the network's parameters are literal, another value of the case is not
    found = sites(
        tmp_path,
        """
        from parameterized import parameterized
        from ordering import OrderingType

        TEST_CASE_0 = [{"channels": (8, 8)}, {"ordering_type": OrderingType.RASTER.value}]
        CASES_2D = [TEST_CASE_0]
        CASES = CASES_2D + [[{"channels": (4, 4)}, {}]]
        if OrderingType:
            OTHER = [[{"channels": (2, 2)}, {}]]
        else:
            OTHER = [[{"channels": (3, 3)}, {}]]

        @parameterized.expand(CASES)
        def test_shape(params, ordering):
            Net(**params)
            Net(**ordering)

        @parameterized.expand(OTHER)
        def test_other(params, ordering):
            Net(**params)  # OTHER's branches disagree on the first case: not read
        """,
    )
    assert found == [(15, (), (("channels", (8, 8)),), EXPAND_NOTE)]


@pytest.mark.parametrize(
    "body",
    [
        "def f():\n    dim = 4\n    dim = 8\n    Net(dim)\n",  # assigned twice
        "def f():\n    dim = 4\n    dim += 4\n    Net(dim)\n",  # augmented
        "def f(x):\n    if x:\n        dim = 4\n    Net(dim)\n",  # in a branch
        "def f():\n    for dim in (1, 2):\n        pass\n    Net(dim)\n",  # after its loop
        "def f():\n    Net(dim)\n    dim = 4\n",  # before its assignment
        "def f():\n    d = {'a': 1}\n    d['a'] = 2\n    Net(**d)\n",  # changed in place
        "def f():\n    d = {'a': 1}\n    d.update(a=2)\n    Net(**d)\n",
        "def f():\n    dim = 4\n    def g():\n        nonlocal dim\n        dim = 5\n    Net(dim)\n",
        "def f():\n    dim = 4\n    return [Net(dim) for dim in g()]\n",  # its own loop name
        "def f(dim=4):\n    Net(dim)\n",  # a parameter: any value
        "def f(x):\n    for dim in x:\n        Net(dim)\n",  # not a literal sequence
        "@pytest.mark.parametrize('dim', [1], indirect=True)\ndef test_f(dim):\n    Net(dim)\n",
        "@pytest.mark.parametrize('dim', [1, 2])\ndef test_f(dim):\n    dim = dim * 2\n"
        "    Net(dim)\n",  # a parameter rebound
        "def f():\n    d = {'a': 1}\n    Net(**d, a=2)\n",  # the same keyword twice
        "def test_f():\n    for dim in (0, -1):\n        with pytest.raises(ValueError):\n"
        "            Net(dim)\n",  # meant to fail
    ],
)
def test_a_name_that_could_hold_another_value_is_no_call_site(tmp_path: Path, body: str) -> None:
    assert sites(tmp_path, body) == []


def test_literal_calls_come_before_calls_with_local_values(tmp_path: Path) -> None:
    found = sites(
        tmp_path,
        """
        def f():
            dim = 4
            Net(dim)
        Net(8)
        """,
    )
    assert [(line, note) for line, _, _, note in found] == [(5, ""), (4, "")]


def test_a_block_holds_a_bounded_number_of_local_values(tmp_path: Path) -> None:
    # generated code: 1,000 names each assigned then used; only the first MAX_LOCALS are held
    body = "def f():\n" + "".join(f"    a{i} = {i}\n    Net(a{i})\n" for i in range(1000))
    assert len(sites(tmp_path, body)) == MAX_LOCALS


def test_a_call_of_a_class_as_an_argument(tmp_path: Path) -> None:
    # the outer call is a call site, the inner one a Target with its arguments read the
    # same way (literals, local values, further calls); the inner call is one of its own
    found = sites(
        tmp_path,
        """
        def test_nested():
            heads = 8
            Net(num_tokens=256, layers=Net(dim=512, heads=heads), act=nn.GELU())
            Net([nn.Linear(4, 4), nn.ReLU()])
        """,
    )
    inner = Target("test_mod.Net", (), (("dim", 512), ("heads", 8)))
    gelu = Target("torch.nn.GELU", (), ())
    stack = [Target("torch.nn.Linear", (4, 4), ()), Target("torch.nn.ReLU", (), ())]
    assert found == [  # literal calls first, then those with local values
        (5, (stack,), (), ""),
        (4, (), (("num_tokens", 256), ("layers", inner), ("act", gelu)), ""),
        (4, (), (("dim", 512), ("heads", 8)), ""),
    ]


def test_a_nested_call_that_is_not_read(tmp_path: Path) -> None:
    # a function's result, a name the test binds, a call of a lowercase name, a spread,
    # an argument that is no literal: no call site of the outer call
    found = sites(
        tmp_path,
        """
        def make():
            return nn.Linear(2, 2)

        def test_refused(x):
            Layer = nn.Linear
            Net(layers=make())
            Net(layers=Layer(2, 2))
            Net(size=int(3))
            Net(layers=nn.Sequential(*[]))
            Net(layers=nn.Linear(x, 2))
        """,
    )
    assert found == []


def test_cases_assigned_under_an_if_of_a_name(tmp_path: Path) -> None:
    # MONAI: `if has_einops: CASES = A + B` `else: CASES = A` (the same first case either
    # way), and a name assigned only under such an `if`; not a name also assigned
    # elsewhere, branches whose first cases differ, nor an `if` of another test
    found = sites(
        tmp_path,
        """
        from parameterized import parameterized

        has_einops = True
        PLAIN = [[{"dim": 8}], [{"dim": 9}]]
        WITH_EINOPS = [[{"dim": 16}]]
        if has_einops:
            CASES = PLAIN + WITH_EINOPS
            ONLY = [[{"dim": 4}]]
            TWICE = [[{"dim": 5}]]
            SPLIT = WITH_EINOPS + PLAIN
        else:
            CASES = PLAIN
            SPLIT = PLAIN
        TWICE = [[{"dim": 6}]]
        if has_einops > 0:
            OTHER = [[{"dim": 7}]]

        @parameterized.expand(CASES)
        def test_cases(params):
            Net(**params)

        @parameterized.expand(ONLY)
        def test_only(params):
            Net(**params)

        @parameterized.expand(TWICE)
        def test_twice(params):
            Net(**params)

        @parameterized.expand(SPLIT)
        def test_split(params):
            Net(**params)

        @parameterized.expand(OTHER)
        def test_other(params):
            Net(**params)
        """,
    )
    assert found == [
        (21, (), (("dim", 8),), EXPAND_NOTE),
        (25, (), (("dim", 4),), EXPAND_NOTE),
    ]


def test_the_first_value_of_a_comprehension(tmp_path: Path) -> None:
    # a literal sequence or range (nested loops too), as for a `for` loop; not a loop that
    # filters, one over something not literal, nor a name the comprehension rebinds
    found = sites(
        tmp_path,
        """
        def test_nets(sizes):
            nets = [Net(d) for d in (1, 2)]
            pairs = {(w, h): Net(w, h) for w in range(3, 5) for h in [7, 8]}
            kept = [Net(d) for d in (1, 2) if d > 1]
            given = [Net(d) for d in sizes]
            inner = [Net(d, e) for d in (4, 5) for e in sizes]
        """,
    )
    assert found == [
        (3, (1,), (), LOOP_NOTE),
        (4, (3, 7), (), LOOP_NOTE),
    ]


def test_a_literal_call_meant_to_fail_is_no_call_site(tmp_path: Path) -> None:
    # MONAI's AutoencoderKL: three literal calls in `with self.assertRaises(...)` used to
    # take the three tries before the test's first parameterized case
    found = sites(
        tmp_path,
        """
        def test_bad():
            with pytest.raises(ValueError):
                Net(3, groups=5)
            Net(4)
        """,
    )
    assert found == [(5, (4,), (), "")]


def test_a_conditional_a_negation_and_a_dict_call_of_known_values(tmp_path: Path) -> None:
    found = sites(
        tmp_path,
        """
        @pytest.mark.parametrize("has_mem", [True, False])
        def test_net(has_mem):
            Net(mem=1 if has_mem else 0, plain=not has_mem, kw=dict(learned=has_mem, n=2))

        def test_unknown(flag):
            Net(mem=1 if flag else 0)
        """,
    )
    # the conditional's test known (the first case): its branch; an unknown one: no call site
    kwargs = (("mem", 1), ("plain", False), ("kw", {"learned": True, "n": 2}))
    assert found == [(4, (), kwargs, PARAMETRIZE_NOTE)]


@pytest.mark.parametrize("binding", ["from helpers import dict", "def dict(**kw):\n    return kw"])
def test_a_dict_call_of_a_module_that_binds_dict_is_not_read(tmp_path: Path, binding: str) -> None:
    assert sites(tmp_path, f"{binding}\n\nNet(kw=dict(a=1))\n") == []


def test_cases_made_by_a_comprehension_a_slice_or_an_item_of_module_cases(tmp_path: Path) -> None:
    found = sites(
        tmp_path,
        """
        import unittest
        from parameterized import parameterized

        UP = [
            [{"dims": dims, "mode": "bilinear" if dims == 2 else "trilinear"}]
            for dims in [2, 3]
        ]
        EXTRACT = [
            [{"dims": dims, "act": act}] for dims, act in zip(range(2, 4), ["relu", None])
        ]
        CASES = [[{"dims": 1, "r": 3}, (7, 4)], [{"dims": 3, "r": 2}, (1, 4)]]

        class TestNet(unittest.TestCase):
            @parameterized.expand(UP)
            def test_up(self, param):
                Net(**param)

            @parameterized.expand(EXTRACT)
            def test_extract(self, param):
                Net(**param)

            @parameterized.expand(CASES[:1])
            def test_slice(self, param, shape):
                Net(**param)

            def test_script(self):
                param, shape = CASES[1]
                Net(**param, small=param["r"] < 3, last=shape[-1])
        """,
    )
    assert found == [
        (17, (), (("dims", 2), ("mode", "bilinear")), EXPAND_NOTE),
        (21, (), (("dims", 2), ("act", "relu")), EXPAND_NOTE),
        (25, (), (("dims", 1), ("r", 3)), EXPAND_NOTE),
        (29, (), (("dims", 3), ("r", 2), ("small", True), ("last", 4)), ""),
    ]


@pytest.mark.parametrize(
    "cases",
    [
        "[[{'d': d}] for d in range(10**9)]",  # too many items
        "[[{'d': (a, b)}] for a in range(200) for b in range(200)]",  # too many, nested
        "[[{'d': d}] for d in unknown]",  # over what is not literal
        "[[{'d': d}] for d in range(0, 9, 0)]",  # a zero step
    ],
)
def test_comprehensions_beyond_the_bounds_are_no_cases(tmp_path: Path, cases: str) -> None:
    body = f"""
    from parameterized import parameterized

    CASES = {cases}

    @parameterized.expand(CASES)
    def test_net(param):
        Net(**param)
    """
    assert sites(tmp_path, body) == []


def test_cases_appended_by_loops_at_module_level(tmp_path: Path) -> None:
    """MONAI's layout: ``CASES = []``, names reassigned between blocks of loops, the first
    pass of each loop appending a case whose last item is no literal."""
    found = sites(
        tmp_path,
        """
        import platform
        from parameterized import parameterized

        ON_ARM = platform.machine() == "aarch64"
        strides: tuple

        CASES_2D = []
        out_channels = 2
        for kernel in [(3, 3), ((3, 1), 1)]:
            for strides in [(1, 1), (2, 2)]:
                expected = (1, out_channels, *[64 // strides[0]] * 2)
                for res in [True, False]:
                    padding = platform.python_version()
                    if ON_ARM:
                        res = not res
                    case = [{"kernel": kernel, "strides": strides, "up": strides[1:]}, expected]
                    CASES_2D.append(case)

        CASES_3D = []
        out_channels = 3
        for depth in range(2, 4):
            CASES_3D.append(({"kernel": 3, "out": out_channels, "depth": depth}, (1, 3)))

        class TestNet:
            @parameterized.expand(CASES_2D + CASES_3D)
            def test_2d(self, params, expected):
                net = Net(**params)
                if params.get("up"):
                    pass

            @parameterized.expand(CASES_3D)
            def test_3d(self, params, shape):
                Net(**params)
        """,
    )
    assert found == [
        (28, (), (("kernel", (3, 3)), ("strides", (1, 1)), ("up", (1,))), EXPAND_NOTE),
        (34, (), (("kernel", 3), ("out", 3), ("depth", 2)), EXPAND_NOTE),
    ]


@pytest.mark.parametrize(
    "cases",
    [
        "CASES = []\nfor k in {1, 2}:\n    CASES.append([{'k': k}])\n",  # a set: no first item
        "CASES = []\nfor k in SIZES:\n    CASES.append([{'k': k}])\n",  # over no literal
        "CASES = []\nif platform.system():\n    CASES.append([{'k': 1}])\n",
        "CASES = []\nCASES.extend([[{'k': 0}]])\nCASES.append([{'k': 1}])\n",
        "CASES = []\ncase = [{'k': 1}]\ncase[0]['k'] = 2\nCASES.append(case)\n",
        "CASES = []\ncase = {'k': 1}\nchange(case)\nCASES.append([case])\n",
        "CASES = []\nfor k in [1, 2]:\n    CASES.append([*k])\n",
    ],
)
def test_appended_cases_that_cannot_be_known(tmp_path: Path, cases: str) -> None:
    body = "import platform\nfrom parameterized import parameterized\n\n" + cases
    body += "\n\n@parameterized.expand(CASES)\ndef test_net(params):\n    Net(**params)\n"
    assert sites(tmp_path, body) == []


def test_cases_that_name_the_classes_a_test_calls(tmp_path: Path) -> None:
    """MONAI's ``@parameterized.expand([[SENet154, ARGS], [SEResNet50, ARGS]])`` and
    ``net = net(**net_args)``: each case that names another class is a call of it; a later
    case gives no other call site (``Net(depth=...)`` keeps its first case); a parameter
    bound again to something else (``cls = Big``) or not called gives none."""
    path = tmp_path / "test_family.py"
    path.write_text(
        dedent(
            """
            import pytest
            from parameterized import parameterized
            from torch import nn

            from family import Big, Small

            ARGS = {"dim": 8}
            CASE_SMALL = [Small, ARGS]

            class Net(nn.Module):
                pass

            class TestFamily:
                @parameterized.expand([CASE_SMALL, [Big, {"dim": 16}], [Small, {"dim": 4}]])
                def test_shape(self, net, net_args):
                    net = net(**net_args).to("cpu")
                    Net(**net_args)

            @pytest.mark.parametrize("cls", [Small, Big])
            @pytest.mark.parametrize("depth", [2, 3])
            def test_depth(cls, depth):
                cls(dim=depth * 2, depth=depth)

            @pytest.mark.parametrize("make", [Small, Big])
            def test_unused(make):
                assert make is not None

            @pytest.mark.parametrize("cls", [Small, Big])
            def test_rebound(cls):
                cls = Big
                cls(dim=8)
            """
        )
    )
    info = read_file(path, path.read_text())
    found = [
        (s.target, s.line, s.kwargs, s.note)
        for s in call_sites(info)
        if not s.target.startswith(("pytest", "parameterized"))
    ]
    assert found == [
        ("family.Small", 17, (("dim", 8),), EXPAND_NOTE),
        ("family.Big", 17, (("dim", 16),), "parameterized case 2"),
        ("test_family.Net", 18, (("dim", 8),), EXPAND_NOTE),
        ("family.Small", 23, (("dim", 4), ("depth", 2)), PARAMETRIZE_NOTE),
        ("family.Big", 23, (("dim", 4), ("depth", 2)), f"{PARAMETRIZE_NOTE}; parametrize case 2"),
    ]


def test_a_name_assigned_a_call_of_a_class_is_that_call(tmp_path: Path) -> None:
    """``model = Net(...)`` then ``Wrap(model)``: the argument is the call (a Target), not
    when the name is bound again, nor a call of a function."""
    path = tmp_path / "test_wrap.py"
    path.write_text(
        dedent(
            """
            from torch import nn

            from nets import Net, Wrap, make_net

            def test_wrap():
                model = Net(dim=8).to("cpu").eval()
                Wrap(model, heads=2)

            def test_rebound():
                model = Net(dim=8)
                model = Net(dim=16)
                Wrap(model, heads=2)

            def test_function():
                model = make_net(8)
                Wrap(model, heads=2)
            """
        )
    )
    info = read_file(path, path.read_text())
    found = [(s.line, s.args, s.kwargs) for s in call_sites(info) if s.target == "nets.Wrap"]
    assert found == [(8, (Target("nets.Net", (), (("dim", 8),)),), (("heads", 2),))]


def test_loops_over_classes_append_a_case_for_each(tmp_path: Path) -> None:
    """MONAI's DenseNet tests: ``for case in [CASE_1, CASE_2]: for model in [DenseNet121,
    DenseNet169]: CASES.append([model, *case])``, each loop run item by item; a pass that
    appends nothing (``if k > 1``) gives way to the next."""
    path = tmp_path / "test_dense.py"
    path.write_text(
        dedent(
            """
            from parameterized import parameterized

            from nets import Dense121, Dense169

            CASE_1 = [{"dims": 3, "channels": 2}, (2, 2, 32)]
            CASE_2 = [{"dims": 2, "channels": 1}, (2, 1, 32)]

            CASES = []
            for case in [CASE_1, CASE_2]:
                for model in [Dense121, Dense169]:
                    CASES.append([model, *case])

            LATER = []
            for k in [1, 2, 3]:
                if k > 1:
                    LATER.append([{"dims": k, "channels": 4}])

            class TestDense:
                @parameterized.expand(CASES)
                def test_shape(self, model, params, shape):
                    net = model(**params)

                @parameterized.expand(LATER)
                def test_later(self, params):
                    Dense121(**params)
            """
        )
    )
    info = read_file(path, path.read_text())
    found = [(s.target, s.line, s.kwargs, s.note) for s in call_sites(info) if "Dense" in s.target]
    assert found == [
        ("nets.Dense121", 22, (("dims", 3), ("channels", 2)), EXPAND_NOTE),
        ("nets.Dense169", 22, (("dims", 3), ("channels", 2)), "parameterized case 2"),
        ("nets.Dense121", 26, (("dims", 2), ("channels", 4)), EXPAND_NOTE),
    ]


def test_entries_of_a_module_level_table_of_configurations(tmp_path: Path) -> None:
    """segmentation_models_pytorch's layout: each entry names the class and the keyword
    arguments ``get_encoder(name)`` gives it; the entry's other dicts are not arguments."""
    found = sites(
        tmp_path,
        """
        SIZES = 64
        encoders = {
            "small": {
                "encoder": Net,
                "params": {"dim": 32, "depth": SIZES // 8, "block": nn.Linear},
                "pretrained_settings": {"imagenet": {"url": "https://example.invalid"}},
            },
            "large": {"cls": Net, "kwargs": {"dim": 128, "pretrained": True}},
            "plain": {"encoder": Net, "params": {"dim": 8}, "extra": {"x": 1}},
        }
        """,
    )
    linear = found[0][2][2][1]
    assert (linear.local, linear.target, linear.text) == ("nn", "torch.nn", "nn.Linear")
    assert found == [
        (4, (), (("dim", 32), ("depth", 8), ("block", linear)), "encoders['small']"),
        (9, (), (("dim", 128), ("pretrained", False)), "encoders['large']"),  # no weights
        (10, (), (("dim", 8),), "encoders['plain']"),  # "params" says which dict
    ]


@pytest.mark.parametrize(
    "table",
    [
        '{"a": {"encoder": Net, "params": {"dim": unknown}}}',  # a value no literal
        '{"a": {"encoder": Net, "first": {"dim": 8}, "second": {"dim": 9}}}',  # which dict?
        '{"a": {"encoder": Net, "other": Net, "params": {"dim": 8}}}',  # which class?
        '{"a": {"encoder": Net}}',  # no arguments
        '{"a": {"encoder": Net, "params": {}}}',  # an empty dict says nothing
        '{1: {"encoder": Net, "params": {"dim": 8}}}',  # a key that names no entry
        '{"a": {"encoder": Net, "params": {"dim": 8}, 2: 3}}',  # not an entry of strings
    ],
)
def test_table_entries_that_give_no_call(tmp_path: Path, table: str) -> None:
    assert sites(tmp_path, f"encoders = {table}\n") == []


def test_a_table_inside_a_function_is_not_read(tmp_path: Path) -> None:
    body = """
        def tables():
            encoders = {"a": {"encoder": Net, "params": {"dim": 8}}}
            return encoders
        """
    assert sites(tmp_path, body) == []


def test_a_partial_of_a_class_as_an_argument(tmp_path: Path) -> None:
    """timm's and segmentation_models_pytorch's ``norm_layer=partial(nn.LayerNorm,
    eps=1e-6)``: the class the partial binds, with its arguments; not a partial of a
    function, nor a ``partial`` that is not functools'."""
    found = sites(
        tmp_path,
        """
        import functools
        from functools import partial

        def partial_(*args):
            return args

        Net(norm=partial(nn.LayerNorm, eps=1e-6), dim=8)
        Net(norm=functools.partial(nn.GroupNorm, 4), dim=16)
        Net(norm=partial(print, 1), dim=32)
        Net(norm=partial_(nn.LayerNorm), dim=64)
        Net(norm=partial(partial, nn.LayerNorm), dim=128)
        """,
    )
    layer_norm = Target("torch.nn.LayerNorm", (), (("eps", 1e-6),), partial=True)
    group_norm = Target("torch.nn.GroupNorm", (4,), (), partial=True)
    assert found == [
        (8, (), (("norm", layer_norm), ("dim", 8)), ""),
        (9, (), (("norm", group_norm), ("dim", 16)), ""),
    ]
