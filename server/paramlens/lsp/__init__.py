"""The language server: LSP glue only (handlers, conversions, per-document state)."""
