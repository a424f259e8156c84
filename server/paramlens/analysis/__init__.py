"""Reading the user's code without running it: which classes are models, what their
constructors need, which call sites and constants could supply it, which files import
which. Pure: the standard library's ``ast`` and nothing of the language server, the
engine or the worker (:mod:`.libraries` is given the installed libraries' folders by its
caller). Its modules, each importing only those before it: :mod:`.source`,
:mod:`.notebook`, :mod:`.model`, :mod:`.literals`, :mod:`.local_values`, :mod:`.reading`,
:mod:`.calls`, :mod:`.workspace`, then :mod:`.libraries` and :mod:`.example_args` (standalone)."""
