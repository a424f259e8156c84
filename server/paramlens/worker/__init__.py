"""The worker: code that runs inside the *user's* Python interpreter.

Everything in this package imports only the standard library and torch (>= 2.1)
and stays compatible with Python 3.10, because it runs in environments paramlens
does not control. The server starts it as a package loaded from this folder (see
``BOOTSTRAP``), never by putting the server's site-packages on its path.
``protocol`` (and ``BOOTSTRAP``) is all the server imports from here.

Laid out by process and by role, imports flowing one way::

    processes/   serve (the worker) -> scheduler (the job loop) -> zygote -> child
    build/       builder -> forward_pass -> placement, measure, errors, sites
    forward/     run -> inputs, counters, line_shapes, explain, repeats; memory
    loader.py    importing the user's files as definitions only
    sandbox.py   isolation layers
    layers.py    words for a layer
    wire.py      JSON-lines framing
    protocol.py  the wire types, shared with the server
"""

# How the server starts the worker, and the worker its subprocesses without fork: import
# this package from its folder under the name ``paramlens_worker`` (the user's interpreter
# has no paramlens installed), then run ``processes.serve.main``.
BOOTSTRAP = (
    "import importlib.util, sys\n"
    "d = sys.argv[1]\n"
    "if sys.path and sys.path[0] == '': del sys.path[0]\n"
    "s = importlib.util.spec_from_file_location("
    "'paramlens_worker', d + '/__init__.py', submodule_search_locations=[d])\n"
    "m = importlib.util.module_from_spec(s); sys.modules['paramlens_worker'] = m\n"
    "s.loader.exec_module(m)\n"
    "from paramlens_worker.processes.serve import main; main(sys.argv[2:])\n"
)
