"""The loop a jobd worker runs in a warm Python interpreter.

A worker starts this script with the caller's interpreter, directory and
environment, and keeps it between jobs and programs while they match. It
speaks on stdin and stdout (the framed protocol of `jobctl map --stream
--framed`):

  "!<paths> <variables>\\n", then frames of a function name ("module:qualname"),
      its path entries and the caller's environment: a job's header, before
      its first item
  "<length>\\n<bytes>": an item (a str, decoded as UTF-8 with surrogateescape),
      or "*<count>\\n" and that many frames: the arguments of a starmap item

and answers each item with "<length>\\n<bytes>" (str() of the result) or
"-<length>\\n<message>" (the exception). print() goes to stderr. Before a job
whose modules changed on disk since this interpreter imported them, it exits
with status STALE, before answering anything of that job: the worker then
starts a fresh interpreter and sends the job again, so that edited code is
never served stale.
"""

import importlib
import os
import sys
import traceback

STALE = 75  # the exit status that asks the worker for a fresh interpreter


def read_frame(stream):
    line = stream.readline()
    if not line:
        raise EOFError
    return stream.read(int(line))


def modules_changed(seen):
    """Whether a module's file changed since it was first seen; notes new ones."""
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            continue
        if seen.setdefault(path, mtime) != mtime:
            return True
    return False


def resolve(name):
    """The function `name` ("module:qualname") names, imported by reference."""
    module_name, _, qualname = name.partition(":")
    target = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{name} is not callable")
    return target


def describe(error):
    """The exception and where it was raised, on one line."""
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith("<") and f.filename != __file__
              and f"{os.sep}importlib{os.sep}" not in f.filename]
    if frames:
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text


def answer(out, data, failed=False):
    out.write(b"%s%d\n" % (b"-" if failed else b"", len(data)))
    out.write(data)


def serve():
    stdin = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")  # the protocol's own descriptor
    os.dup2(2, 1)  # print() and stray writes go to stderr
    sys.stdout = sys.stderr
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]  # this script's folder must not shadow the caller's modules
    seen = {}
    modules_changed(seen)
    first_job = True
    function, failure = None, None
    while True:
        try:
            line = stdin.readline()
            if not line:
                return
            if line.startswith(b"!"):
                paths, variables = (int(n) for n in line[1:].split())
                frames = [read_frame(stdin) for _ in range(1 + paths + variables)]
                if not first_job and modules_changed(seen):
                    # The worker starts a fresh interpreter for this job.
                    out.flush()
                    os._exit(STALE)
                if first_job:
                    # Fixed for this interpreter: a worker keeps one per path.
                    sys.path[0:0] = [os.fsdecode(p) for p in frames[1:1 + paths]]
                    first_job = False
                os.environ.clear()
                os.environ.update(os.fsdecode(v).split("=", 1) for v in frames[1 + paths:])
                name = frames[0].decode(errors="surrogateescape")
                importlib.invalidate_caches()  # modules and folders made since the last job
                try:
                    function, failure = resolve(name), None
                except Exception as error:  # an import that fails fails every item
                    function, failure = None, f"cannot load {name}: {describe(error)}"
                modules_changed(seen)
                continue
            count = 1
            if line.startswith(b"*"):
                count = int(line[1:])
                line = stdin.readline()
            args = [stdin.read(int(line))] + [read_frame(stdin) for _ in range(count - 1)]
        except EOFError:
            return
        if failure is not None:
            answer(out, failure.encode(errors="surrogateescape"), failed=True)
        else:
            try:
                result = function(*(a.decode(errors="surrogateescape") for a in args))
                answer(out, str(result).encode(errors="surrogateescape"))
            except Exception as error:
                answer(out, describe(error).encode(errors="surrogateescape"), failed=True)
        out.flush()


if __name__ == "__main__":
    serve()
