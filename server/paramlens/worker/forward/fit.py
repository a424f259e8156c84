"""The largest batch whose training step fits a card: searched by simulating steps, since
the peak is near-linear in the batch but not exactly (the allocator's 2 MiB stairs, buffers
that do not grow with it).

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..protocol import StepMemory

SEARCH_PROBES = 24  # steps simulated at most to find the largest batch that fits
SECANT_PROBES = 4


def largest_batch(
    step: StepMemory,
    at: Callable[[int], StepMemory],
    fits: Callable[[StepMemory], bool],
    usable: int,
    deadline: float | None,
) -> tuple[int, str]:
    """The largest batch whose step fits, kept between the largest batch known to fit
    (``lo``) and the smallest known not to (``hi``, 0 while none is known).

    The secant first, on what the allocator hands out (near-linear in the batch) against
    the card less the segments' slack at the last batch tried; then strides doubling away
    from the last batch tried (the reserved memory grows in stairs a line does not see),
    then halving."""
    known = {step.batch: step.gpu_allocated}
    slack = step.gpu_reserved - step.gpu_allocated
    last_fit = fits(step)
    lo, hi = (step.batch, 0) if last_fit else (0, step.batch)
    probes, stride = 0, 1
    while hi != lo + 1:
        if probes >= SEARCH_PROBES or (deadline is not None and time.monotonic() > deadline):
            return lo, f"stopped after {probes} more steps: the largest batch is at least {lo}"
        if probes < SECANT_PROBES:
            guess = secant(known, lo, hi, usable - slack)
        elif not hi or hi - lo > 2 * stride:
            guess = lo + stride if last_fit else hi - stride
            stride *= 2
        else:
            guess = (lo + hi) // 2
        guess = max(guess, lo + 1)
        if hi:
            guess = min(guess, hi - 1)
        probes += 1
        tried = at(guess)
        known[guess] = tried.gpu_allocated
        slack = tried.gpu_reserved - tried.gpu_allocated
        last_fit = fits(tried)
        if last_fit:
            lo = guess
        else:
            hi = guess
    if lo == 0:
        return 0, f"batch 1 does not fit ({probes} more steps simulated)"
    return lo, f"batch {lo + 1} does not fit ({probes} more steps simulated)"


def secant(known: dict[int, int], lo: int, hi: int, target: int) -> int:
    """The batch where the line through the known peaks nearest ``lo`` and ``hi`` meets
    ``target``; with one known peak, where a peak in proportion to the batch would."""
    points = sorted(known.items())
    if len(points) < 2:
        # the peak grows less than in proportion to the batch: this batch fits, and it is
        # far enough from the first for the line through both to be good
        ((batch, peak),) = points
        return max(1, int(batch * target / peak)) if peak else lo * 2
    below = [p for p in points if p[0] <= lo] or points[:1]
    above = [p for p in points if hi and p[0] >= hi] or [points[-1]]
    (b1, m1), (b2, m2) = below[-1], above[0]
    if (b1, m1) == (b2, m2):
        (b1, m1), (b2, m2) = points[-2], points[-1]
    if m2 <= m1:
        return lo * 2 if not hi else (lo + hi) // 2
    return int(b1 + (target - m1) * (b2 - b1) / (m2 - m1))
