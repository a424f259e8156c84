"""The language server: LSP glue only (handlers, conversions, per-document state). Imports
pygls and lsprotocol, :mod:`paramlens.engine`, :mod:`paramlens.render`,
:mod:`paramlens.config` and the worker's protocol; the logic it calls lives there."""
