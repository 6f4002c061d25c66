"""jobd from Python: multiprocessing.Pool and concurrent.futures on warm workers.

    import jobd
    with jobd.Pool() as pool:               # like multiprocessing.Pool()
        print(pool.map(work, range(100)))
    with jobd.Pool(pool="io") as pool:      # I/O-bound work: like multiprocessing.dummy
        pages = pool.map(fetch, urls)
    with jobd.Executor() as executor:       # like ProcessPoolExecutor
        future = executor.submit(work, 1)

The functions run in jobd's worker processes, each of which keeps a Python
interpreter (the caller's sys.executable, in its directory, with its
environment and sys.path) warm between jobs and programs; a module edited on
disk is never served stale. Module-level functions travel by reference,
lambdas, closures and functions of __main__ by value (cloudpickle); arguments
and results are pickled, large buffers (pickle protocol 5) travel in shared
memory. If no jobd runs, jobd.Pool starts one (JOBD_AUTOSTART=0: it does not).
"""

from ._job import JobdError, RemoteError, RemoteTraceback, WorkerLost
from ._pool import AsyncResult, IMapIterator, MapResult, Pool

__all__ = ["Pool", "Executor", "AsyncResult", "MapResult", "IMapIterator", "JobdError",
           "RemoteError", "WorkerLost", "RemoteTraceback"]


def __getattr__(name):
    # Imported when first used: concurrent.futures (with logging) costs a new
    # program more time than the rest of the package.
    if name == "Executor":
        from ._executor import Executor
        return Executor
    raise AttributeError(f"module 'jobd' has no attribute {name!r}")
