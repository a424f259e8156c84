"""Building one model class inside a build child: construct it (``placement``: meta, small
tensors on the CPU, or the CPU), measure it (``measure``), run its forward()
(``forward_pass``, which uses :mod:`..forward`), and word what failed (``errors``).
``builder.build_class`` is the entry point; ``sites`` records which line made each module.
"""
