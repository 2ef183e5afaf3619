"""Worker processes for CPU-bound work that must not hold the event loop's GIL.

Feed parsing (feedparser holds the GIL for milliseconds per feed) and journal compaction
(serialising the whole state) run in process pools. One rule for creating them: forkserver
(or spawn) and never fork, because the bot process has threads (aiofiles, asyncio's default
executor) and forking a threaded process can deadlock the child.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started with forkserver (spawn where unavailable)."""
    methods = multiprocessing.get_all_start_methods()
    method = "forkserver" if "forkserver" in methods else "spawn"
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
