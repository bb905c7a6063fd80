"""A worker process that ends when the process that started it dies, even by SIGKILL.

``serve``'s own children watch their standard input (understudy/children.py). A
multiprocessing pool's worker has no such lifeline: it holds both ends of its task
queue, so it would wait for work forever once its parent is gone. Linux can send it a
signal instead when its parent dies; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when ``parent_pid``, its parent, dies; exit now
    if it already has. A pool's ``initializer``, given the pid of the process making
    the pool."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        return  # refused: the worker is left as it was
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os._exit(1)
