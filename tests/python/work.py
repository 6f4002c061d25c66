"""Functions the tests run on jobd's workers, by reference (this module is
imported by the workers' interpreters from the tests' sys.path)."""

import os
import signal
import time


class Token:
    """A value that can be referenced weakly."""


def square(x):
    return x * x


def add(a, b):
    return a + b


def echo(x):
    return x


def pid(_=None):
    return os.getpid()


def slow_pid(seconds):
    time.sleep(seconds)
    return os.getpid()


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def divide(a, b):
    return a / b


def environment(name):
    return os.environ.get(name)


def cwd(_=None):
    return os.getcwd()


class Unpicklable(Exception):
    """An exception that pickles but cannot be unpickled (required argument)."""

    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


def raise_unpicklable(_):
    raise Unpicklable(1, 2)


def refuse(message):
    raise ValueError(message)


class UnreadableHere:
    """Pickles in the worker; unpickling it raises (in the caller)."""

    def __reduce__(self):
        return refuse, ("refused on purpose",)


def unreadable_if(x):
    return UnreadableHere() if x else x


def return_lock(_):
    import threading
    return threading.Lock()


def kill_once(marker):
    """Kills its own interpreter the first time it sees `marker` missing."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def kill_always(_):
    os.kill(os.getpid(), signal.SIGKILL)


def record_init(path, value):
    """An initializer: notes which interpreter ran it."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()} {value}\n")
    global INITIALIZED
    INITIALIZED = value


INITIALIZED = None


def initialized(_):
    return INITIALIZED


def identity_array(array):
    return array


def double_array(array):
    array *= 2  # arrays arrive writable, as with multiprocessing
    return array


def logged(path, x):
    """Notes each call (to count how often an item ran), fails on 5."""
    with open(path, "a") as f:
        f.write(f"{x}\n")
    if x == 5:
        raise ValueError("five")
    return x


def failing_init():
    raise RuntimeError("the initializer fails")


def double_where(array):
    """Twice `array`, and the jobd that ran it ($JOBD_NODE, None on a head),
    after a pause that lets every worker take a share."""
    time.sleep(0.05)
    return 2 * array, os.environ.get("JOBD_NODE")
