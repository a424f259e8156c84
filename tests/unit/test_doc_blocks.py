"""Reading documentation blocks (issue 20's doc examples): which Markdown blocks are Python
and the file line of each statement, from fences, ``>>>`` sessions and docstrings."""

from __future__ import annotations

from paramlens.analysis.docs import docstring_chunks, markdown_chunks
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
