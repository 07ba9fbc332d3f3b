"""What the workflow does once Snakemake has finished every job, before its process exits.

Snakemake's scheduler arms a ``threading.Timer`` after each round that selected jobs, to wake
itself once its job-rate window (``--max-jobs-per-timespan``, 1 s by default) has passed. The
timer is not a daemon thread, so after the last job the interpreter waits for the last one to
fire before it exits: up to a second added to every run, which a user waits for and which counts
against the fixed cost around the request phase (issue 15). The workflow's ``onsuccess`` and
``onerror`` handlers run after scheduling has ended, when those wake-ups have nobody left to
wake, so they cancel them.
"""

from __future__ import annotations

import threading


def cancel_pending_timers() -> int:
    """Cancel every ``threading.Timer`` of this process that has not fired; return how many.

    A cancelled timer's thread ends at once without calling its function.
    """
    timers = [
        thread
        for thread in threading.enumerate()
        if isinstance(thread, threading.Timer) and not thread.finished.is_set()
    ]
    for timer in timers:
        timer.cancel()
    return len(timers)
