"""forward() on a built model: its input (``inputs``), the run (``run``), what each call
sees (``counters``), the shapes of forward()'s own lines (``line_shapes``), failures in
words (``explain``), repeated blocks run once (``repeats``), and training memory
(``memory``). Never imports :mod:`..build`: building calls into here, not the reverse.
"""
