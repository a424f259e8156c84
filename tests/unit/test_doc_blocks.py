"""Reading documentation blocks (issue 20's doc examples): which Markdown blocks are Python
and the file line of each statement, from fences, ``>>>`` sessions and docstrings."""

from __future__ import annotations

from paramlens.analysis.docs import docstring_chunks, markdown_chunks, rst_chunks
from paramlens.analysis.model import FileInfo

MARKDOWN = """# pkg

```bash
pip install pkg
```

~~~py
net = Net(dim=4)
~~~

1. In a list:

   ```python
   net = Net(
       dim=8,
   )
   ```

```pycon
>>> net = Net(dim=16)
>>> net
Net(...)
```

```python
print("not closed")
"""


def test_markdown_python_blocks_with_their_lines() -> None:
    blocks = markdown_chunks(MARKDOWN)
    found = [[(c.line, c.text.splitlines()[0]) for c in chunks] for chunks in blocks]
    assert found == [
        [(8, "net = Net(dim=4)")],
        [(14, "net = Net(")],
        [(20, "net = Net(dim=16)"), (21, "net")],
        [(26, 'print("not closed")')],  # CommonMark closes it at the end of the file
    ]


def test_docstring_examples_with_their_lines() -> None:
    text = (
        "def make():\n"
        '    """Build one.\n'
        "\n"
        "    >>> net = Net(dim=4)\n"
        "    >>> net(\n"
        "    ...     x)\n"
        '    """\n'
    )
    info = FileInfo("/w/m.py", "m", "/w", source=text)
    [chunks] = docstring_chunks(info)
    assert [(c.line, c.text) for c in chunks] == [(4, "net = Net(dim=4)\n"), (5, "net(\n    x)\n")]


RST = """Usage
=====

A net, as follows::

    net = Net(dim=4)

    net.eval()

Not code: a directive's content.

.. note::

    Net(dim=99) is mentioned here.

.. code-block:: python
   :caption: a wider one

   wide = Net(
       dim=8,
   )

.. code-block:: bash

   pip install net

A session is left to doctest::

    >>> Net(dim=16)
"""


def test_rest_literal_blocks_with_their_lines() -> None:
    blocks = rst_chunks(RST, 1)
    found = [[(c.line, c.text) for c in chunks] for chunks in blocks]
    assert found == [
        [(6, "net = Net(dim=4)\n\nnet.eval()\n")],
        [(19, "wide = Net(\n    dim=8,\n)\n")],
    ]


def test_rest_blocks_of_docstrings_with_their_file_lines() -> None:
    text = 'class Net:\n    """A net.\n\n    Examples::\n\n        net = Net(dim=4)\n    """\n'
    info = FileInfo("/w/m.py", "m", "/w", source=text)
    [chunks] = docstring_chunks(info)
    assert [(c.line, c.text) for c in chunks] == [(6, "net = Net(dim=4)\n")]
