"""paramlens: parameter counts, shapes and totals of PyTorch models, in the editor.

Layout (by where the code runs):

- ``worker/``: runs in the user's interpreter (stdlib + torch); builds models.
- ``discovery``, ``config``, ``engine``, ``render``: the server side's pure logic
  (never imports user code or torch).
- ``worker_client``: starts and talks to the worker.
- ``cli`` and ``lsp/``: the two front ends on the same engine.
"""

__version__ = "0.1.0"
