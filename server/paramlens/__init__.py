"""paramlens: parameter counts, shapes and totals of PyTorch models, in the editor.

Layout (by where the code runs), each package importing only those listed before it:

- ``worker/``: runs in the user's interpreter (stdlib + torch); builds models. The server
  side imports only its wire types (``worker.protocol``) and ``worker.BOOTSTRAP``.
- ``config``: the settings tree, and where a workspace's root is (stdlib only).
- ``analysis/``: reading the user's code without running it (pure ``ast``).
- ``render``: figures as text: lens titles, hovers, tables, JSON (pure).
- ``engine/``: what to build, when, and its cache; starts and talks to the worker.
- ``lsp/`` and ``cli/``: the two front ends on the same engine (``paramlens lsp`` runs the
  language server from the command line).

``tests/unit/test_architecture.py`` keeps this order, and the import graph acyclic.
"""

__version__ = "0.1.0"
