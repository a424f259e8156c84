"""The worker's processes, one module each, and what they share.

``serve`` is the worker itself (started by the server); it runs the job loop of
``scheduler``, which forks a build child (``child``) per job, or hands the job to the
zygote of its package (``zygotes`` is the handle, ``zygote`` the zygote's own body, which
runs the same loop nested). ``startup`` is how the worker and zygotes import torch;
``scratch`` is the worker's folder, the only place builds write, swept if a worker was killed.
Imports flow serve -> scheduler -> zygote -> child -> :mod:`..build`.
"""
