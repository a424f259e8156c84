"""What to build, when, and its cache: the engine both front ends share (:mod:`.engine`),
with how each model class is constructed (:mod:`.constructors`), the result cache and
scan store (:mod:`.cache`), per-line figures (:mod:`.lines`) and the worker process
(:mod:`.worker_client`, :mod:`.spawn`). Imports :mod:`paramlens.analysis`,
:mod:`paramlens.config` and the worker's protocol; nothing of the front ends.

Empty of imports on purpose: the command line imports :mod:`.spawn` (the standard library
only) before anything else, to start the worker early, and importing it runs this file.
"""
