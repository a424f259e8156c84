"""The worker: code that runs inside the *user's* Python interpreter.

Everything in this package imports only the standard library and torch (>= 2.1)
and stays compatible with Python 3.10, because it runs in environments paramlens
does not control. The server starts it as a package loaded from this folder (see
``protocol.BOOTSTRAP``), never by putting the server's site-packages on its path.
``protocol`` is the one module the server imports from here.
"""
