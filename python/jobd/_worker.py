"""The loop a jobd worker runs in a warm Python interpreter.

A worker starts this script with the caller's interpreter, directory and
environment, and keeps it between jobs and programs while they match. It
speaks on stdin and stdout, which it moves to descriptors of its own at once
(a function or a command it runs finds /dev/null on stdin and stderr on
stdout), in the framed protocol of `jobctl map --stream --framed`:

  "!<paths> <variables>\n", then frames of a function name ("module:qualname"),
      the caller's directory, path entries and environment: a job's header,
      before its first item
  "<length>\n<bytes>": an item (a str, decoded as UTF-8 with surrogateescape),
      or "*<count>\n" and that many frames: the arguments of a starmap item

and answers each item with "<length>\n<bytes>" (str() of the result) or
"-<length>\n<message>" (the exception). Before a job whose modules changed on
disk since this interpreter imported them, it answers "!stale\n" and exits,
before answering anything of that job: the worker then starts a fresh
interpreter and sends the job again, so that edited code is never served
stale.
"""

import importlib
import os
import sys
import time
import traceback


def read_frame(stream):
    line = stream.readline()
    if not line:
        raise EOFError
    return stream.read(int(line))


class Modules:
    """The files of the modules this interpreter imported, to tell when one
    has changed since."""

    def __init__(self):
        self.seen = {}  # path -> (inode, size, mtime) when first seen
        self.since = time.time_ns()  # the last check: modules imported after it are newer

    @staticmethod
    def stamp(path):
        try:
            st = os.stat(path)
        except OSError:
            return None  # gone (or never a file: zip imports)
        return st.st_ino, st.st_size, st.st_mtime_ns

    def changed(self):
        """Whether a module's file changed since it was imported; notes new ones."""
        changed = False
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not path:
                continue
            stamp = self.stamp(path)
            known = self.seen.get(path)
            if known is None:
                # Imported since the last check: a file newer than that check
                # may have changed after its import.
                changed |= stamp is not None and stamp[2] > self.since
                self.seen[path] = stamp
            elif stamp != known:
                changed = True
        self.since = time.time_ns()
        return changed


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
    lines = traceback.format_exception_only(type(error), error)
    text = " ".join(" ".join(line.split()) for line in lines if line.strip())
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


def apply_environment(variables):
    """os.environ becomes the caller's: only what differs is changed."""
    wanted = {}
    for variable in variables:
        name, _, value = os.fsdecode(variable).partition("=")
        if name:
            wanted[name] = value
    for name in [n for n in os.environ if n not in wanted]:
        del os.environ[name]
    for name, value in wanted.items():
        if os.environ.get(name) != value:
            try:
                os.environ[name] = value
            except (OSError, ValueError):
                pass  # a name the C library refuses: left out


def serve():
    # The protocol on descriptors of our own (not inherited by what a
    # function starts); stdin is /dev/null, stdout goes to stderr.
    stdin = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]  # this script's folder must not shadow the caller's modules
    modules = Modules()
    modules.changed()
    first_job = True
    function, failure = None, None
    while True:
        try:
            line = stdin.readline()
            if not line:
                return
            if line.startswith(b"!"):
                paths, variables = (int(n) for n in line[1:].split())
                frames = [read_frame(stdin) for _ in range(2 + paths + variables)]
                if not first_job and modules.changed():
                    out.write(b"!stale\n")
                    out.flush()
                    os._exit(0)
                name, cwd = frames[0].decode(errors="surrogateescape"), frames[1]
                if first_job:
                    # Fixed for this interpreter: a worker keeps one per path.
                    sys.path[0:0] = [os.fsdecode(p) for p in frames[2:2 + paths]]
                    first_job = False
                os.chdir(cwd)  # an earlier job may have left elsewhere
                apply_environment(frames[2 + paths:])
                importlib.invalidate_caches()  # modules and folders made since the last job
                try:
                    function, failure = resolve(name), None
                except BaseException as error:  # an import that fails fails every item
                    function, failure = None, f"cannot load {name}: {describe(error)}"
                modules.changed()
                continue
            if line.startswith(b"*"):
                args = [read_frame(stdin) for _ in range(int(line[1:]))]
            else:
                args = [stdin.read(int(line))]
        except EOFError:
            return
        if failure is not None:
            answer(out, failure.encode(errors="backslashreplace"), failed=True)
        else:
            try:
                result = function(*(a.decode(errors="surrogateescape") for a in args))
                answer(out, str(result).encode(errors="surrogateescape"))
            except BaseException as error:  # SystemExit too: the item's error, not the end
                answer(out, describe(error).encode(errors="backslashreplace"), failed=True)
        out.flush()


if __name__ == "__main__":
    serve()
