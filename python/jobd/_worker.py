"""The loop a jobd worker runs in a warm Python interpreter.

A worker starts this script with the caller's interpreter, directory and
environment, and keeps it between jobs and programs while they match. It
speaks on stdin and stdout, which it moves to descriptors of its own at once
(a function or a command it runs finds /dev/null on stdin and stderr on
stdout), in the framed protocol of `jobctl map --stream --framed`:

  "!<protocol> <paths> <variables> <pickled> <max items>\n", then frames of a
      function name ("module:qualname"), the caller's directory, the pickled
      function, the pickled initializer, path entries and environment: a
      job's header, before its first item (<variables> -1 and no
      environment: the last job's)
  "<length>\n<bytes>": an item (a str, decoded as UTF-8 with surrogateescape),
      or "*<count>\n" and that many frames: the arguments of a starmap item

and answers each item with "<length>\n<bytes>" (str() of the result) or
"-<length>\n<message>" (the exception).

A pickled job (jobd.Pool) has items of a pickle and its out-of-band buffers
(pickle protocol 5): the arguments tuple; a chunk, [star, items] (each item
an argument, or its arguments tuple if star), answered with its results and
{offset: exception text} of those that failed; or (function, args, kwargs)
when the job has no function of its own. Its results are packed the same
way (common/args.h: u32 count, then per part u32 length and bytes,
little-endian), and an exception's message ends with the exception pickled,
after EXCEPTION_MARK. Large parts skip the pipe: an argument may come as
"&<length> <segment> <offset>\n", a reference into the shared-memory segment
that holds it (mapped here copy-on-write), and a large result goes into a new
segment of this interpreter's, answered with "&<length> <segment> 0\n" (the
worker makes it the task's output segment, or copies it into the one the task
has, and removes it).

An interpreter that must be replaced answers "!stale\n" and exits: before a
job whose modules changed on disk since it imported them (before answering
anything of that job), or before an item past the job's max items
(maxtasksperchild). The worker then starts a fresh interpreter and sends it
what was not answered, so that edited code is never served stale.
"""

import base64
import importlib
import itertools
import mmap
import os
import pickle
import struct
import sys
import threading
import time
import traceback

PROTOCOL = 3  # of the header (worker/stream.cc)
ANSWER_DELAY = 0.002  # seconds an answer may wait for the next ones, to share a write
EXCEPTION_MARK = "\njobd-pickled-exception:"  # then the exception, pickled, in base64
SEGMENT_FROM = 64 << 10  # results this large go through shared memory, not the pipe
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)  # Linux's, from 5.14


def frame_at(buffer, start):
    """Where the frame at `start` lies: ((first byte, end) or, for a reference
    into a segment, (segment, offset, length), end), or None if it is not
    all there."""
    newline = buffer.find(b"\n", start)
    if newline < 0:
        return None
    if buffer[start:start + 1] == b"&":
        length, segment, offset = buffer[start + 1:newline].split()
        return (segment.decode(), int(offset), int(length)), newline + 1
    end = newline + 1 + int(buffer[start:newline])
    return ((newline + 1, end), end) if len(buffer) >= end else None


STAR, AMPERSAND, ONE = b"*&1"
ONE_PART = struct.Struct("<II")  # an answer of one part: the count, its length (as pack lays out)


def message_at(buffer, start):
    """The message at `start`: (header line or None, frames, end), or None if
    it is not all there. A header's frames are its fields, an item's its
    arguments. Each frame is a copy of its own, made once the message is
    whole, or a copy-on-write mapping of its segment: writable either way (as
    numpy arrays unpickled on it then are)."""
    newline = buffer.find(b"\n", start)
    if newline < 0:
        return None
    if newline == start + 2 and buffer[start] == STAR and buffer[start + 1] == ONE:
        # Most messages: an item of one frame (its pickle), parsed here rather
        # than by the general loop below, for the per-item cost.
        length_end = buffer.find(b"\n", newline + 1)
        if length_end < 0:
            return None
        if buffer[newline + 1] != AMPERSAND:
            end = length_end + 1 + int(buffer[newline + 1:length_end])
            return (None, [buffer[length_end + 1:end]], end) if len(buffer) >= end else None
    first = buffer[start:newline]
    if first[:1] == b"!":
        protocol, paths, variables = (int(n) for n in first[1:].split()[:3])
        # variables: -1 when the job has the last job's environment (none follow)
        count, header = (4 if protocol >= 2 else 2) + paths + max(variables, 0), bytes(first)
    elif first[:1] == b"*":
        count, header = int(first[1:]), None
    else:
        count, header, newline = 1, None, start - 1  # a bare frame
    spans, end = [], newline + 1
    for _ in range(count):
        frame = frame_at(buffer, end)
        if frame is None:
            return None
        spans.append(frame[0])
        end = frame[1]
    return header, [buffer[span[0]:span[1]] if len(span) == 2 else mapped(*span)
                    for span in spans], end


SEGMENTS = {}  # name -> mapping, of the current job's segments


def mapped(segment, offset, length):
    """Bytes of a shared-memory segment, mapped copy-on-write."""
    region = SEGMENTS.get(segment)
    if region is None:
        SEGMENTS.clear()  # items come segment after segment: the last one is enough
        if "/" in segment or not segment.startswith("jobd-"):
            raise ValueError(f"not a jobd segment: {segment!r}")
        fd = os.open(f"/dev/shm/{segment}", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            region = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        SEGMENTS[segment] = region
    if offset + length > len(region):
        raise ValueError(f"{segment}: {offset}+{length} is past its end ({len(region)})")
    return memoryview(region)[offset:offset + length]


# File systems where inotify sees every change to a file (elsewhere, as on NFS,
# a change made by another host goes unseen: such files are checked with stat).
LOCAL_FILE_SYSTEMS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", "f2fs",
                      "squashfs", "ramfs", "vfat", "exfat", "ntfs3", "jfs", "bcachefs"}


class Watches:
    """inotify watches on the folders of module files: a job's check is then
    one read of the events, not a stat of every module. A file written is
    seen when it is closed (IN_CLOSE_WRITE), not at each write (IN_MODIFY):
    a program's logs in the same folder, written in turn, would otherwise
    fill the queue between two jobs, and its overflow counts as a change."""

    IN_ATTRIB, IN_CLOSE_WRITE = 0x4, 0x8
    IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
    IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
    MASK = (IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
            | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)
    LOST = IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF  # anything may have changed

    def __init__(self):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.add = libc.inotify_add_watch
        self.add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self.folders = {}  # folder -> watch descriptor
        self.names = {}    # watch descriptor -> names of module files in its folder
        self.mounts = sorted(self.local_mounts(), key=len, reverse=True)

    @staticmethod
    def local_mounts():
        """The mount points of local file systems (bytes)."""
        with open("/proc/self/mountinfo", "rb") as mountinfo:
            for line in mountinfo:
                fields = line.split()
                separator = fields.index(b"-")
                if fields[separator + 1].decode() in LOCAL_FILE_SYSTEMS:
                    yield fields[4].replace(b"\\040", b" ")

    def local(self, folder):
        """Whether `folder` lies on a local file system (its longest mount point's)."""
        for mount in self.mounts:
            if folder == mount or folder.startswith(mount.rstrip(b"/") + b"/"):
                return True
        return False  # the longest match was not local, or none is known

    def watch(self, path):
        """Watches the file at `path` (its folder, resolved); False if it cannot."""
        folder, name = os.path.split(os.path.realpath(os.fsencode(path)))
        descriptor = self.folders.get(folder)
        if descriptor is None:
            if not self.local(folder):
                return False
            descriptor = self.add(self.fd, folder, self.MASK)
            if descriptor < 0:  # the watch limit, a folder we may not read
                return False
            self.folders[folder] = descriptor
        self.names.setdefault(descriptor, set()).add(name)
        return True

    def changed(self):
        """Whether a watched file changed since the last call (events read)."""
        changed = False
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return changed
            at = 0
            while at < len(data):
                descriptor, mask, _, length = struct.unpack_from("iIII", data, at)
                name = data[at + 16:at + 16 + length].rstrip(b"\0")
                at += 16 + length
                changed |= bool(mask & self.LOST) or name in self.names.get(descriptor, ())


class Modules:
    """The files of the modules this interpreter imported, to tell when one
    has changed since: watched (Watches) where inotify can, else checked with
    stat at each look."""

    def __init__(self):
        self.known = set()  # the module files seen
        self.stamps = {}    # path -> (inode, size, mtime) of those checked with stat
        self.modules = 0    # len(sys.modules) at the last look
        self.changes = False  # seen, not yet reported
        self.since = time.time_ns()  # the last check: modules imported after it are newer
        try:
            self.watches = Watches()
        except (OSError, AttributeError, ImportError):  # no inotify: stat every file
            self.watches = None

    @staticmethod
    def stamp(path):
        try:
            st = os.stat(path)
        except OSError:
            return None  # gone (or never a file: zip imports)
        return st.st_ino, st.st_size, st.st_mtime_ns

    def changed(self):
        """Whether a module's file changed since it was imported; notes new ones."""
        self._note(check=True)
        changed = self.changes
        for path, stamp in self.stamps.items():
            changed = changed or self.stamp(path) != stamp
        self.changes = False
        self.since = time.time_ns()
        return changed

    def note_new(self):
        """Notes the files of modules imported since the last look, as they are now."""
        self._note(check=False)

    def _note(self, check):
        """Reads what the watches saw, then notes the modules imported since
        the last look; if `check`, a file newer than that look may have
        changed after its import, which counts as a change."""
        if self.watches is not None and self.watches.changed():
            self.changes = True
        if len(sys.modules) == self.modules:
            return  # nothing new (a module replaced in sys.modules by another is missed)
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not path or path in self.known:
                continue
            self.known.add(path)
            watched = self.watches is not None and self.watches.watch(path)
            stamp = self.stamp(path)  # after the watch: a change in between is seen
            if check and stamp is not None and stamp[2] > self.since:
                self.changes = True
            if not watched:
                self.stamps[path] = stamp
        self.modules = len(sys.modules)


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
    frames = user_frames(error)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text


def user_frames(error):
    """The frames of a traceback that are not this loop's or importlib's."""
    return [f for f in traceback.extract_tb(error.__traceback__)
            if not f.filename.startswith("<") and f.filename != __file__
            and f"{os.sep}importlib{os.sep}" not in f.filename]


def answer(out, data, failed=False):
    out.append(b"%s%d\n%s" % (b"-" if failed else b"", len(data), data))


def dumps(value):
    """`value` pickled (protocol 5) and its out-of-band buffers; by value with
    cloudpickle what plain pickle cannot take (lambdas, classes of __main__)."""
    buffers = []
    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception:
        import cloudpickle
        buffers = []
        data = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return data, [b.raw() for b in buffers] if buffers else buffers


def pack(parts):
    """Parts packed as common/args.h lays out a starmap item."""
    out = [struct.pack("<I", len(parts))]
    for part in parts:
        out.append(struct.pack("<I", part.nbytes if isinstance(part, memoryview) else len(part)))
        out.append(part)
    return b"".join(out)


def answer_pickled(out, value, chunk=False):
    """Answers an item of a pickled job with its result, or its error if the
    result cannot be pickled."""
    try:
        data, buffers = dumps(value)
    except Exception as error:
        if chunk:
            answer_pickled(out, unpicklable_results(value))
            return
        failure = TypeError(f"the result, of type {type(value).__qualname__}, cannot be pickled "
                            f"to return it: {error}")
        answer_exception(out, failure)
        return
    if not buffers and len(data) + 8 < SEGMENT_FROM:  # most results: packed here, for speed
        out.append(b"%d\n%s%s" % (len(data) + 8, ONE_PART.pack(1, len(data)), data))
        return
    parts = [data, *buffers]
    size = 4 + sum(4 + memoryview(part).nbytes for part in parts)
    if size < SEGMENT_FROM or not answer_in_segment(out, parts, size):
        answer(out, pack(parts))


def answer_in_segment(out, parts, size):
    """Answers with a reference to a new segment holding the packed parts (one
    copy; the worker hands the segment on as the task's output), or
    returns False if no segment can be made (a full /dev/shm)."""
    name = f"jobd-{os.getuid()}-{os.getpid()}-{os.urandom(8).hex()}"
    try:
        fd = os.open(f"/dev/shm/{name}", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                     os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        try:
            os.posix_fallocate(fd, 0, size)  # ENOSPC now, not SIGBUS while writing
        except OSError:
            os.unlink(f"/dev/shm/{name}")
            return False
        with mmap.mmap(fd, size) as region:
            try:  # the pages mapped at once, not faulted in one by one (common/payload.h)
                region.madvise(MADV_POPULATE_WRITE)
            except (OSError, ValueError):
                pass  # a kernel before 5.14
            struct.pack_into("<I", region, 0, len(parts))
            at = 4
            for part in parts:
                view = memoryview(part).cast("B")
                struct.pack_into("<I", region, at, view.nbytes)
                region[at + 4:at + 4 + view.nbytes] = view
                at += 4 + view.nbytes
                view.release()
    finally:
        os.close(fd)
    out.append(b"&%d %s 0\n" % (size, name.encode()))
    return True


def exception_text(error):
    """An exception for the caller of a pickled job: its description, the
    traceback, and the exception pickled (if it can be)."""
    text = describe(error)
    frames = user_frames(error)
    if frames:
        text += "\n" + "".join(traceback.format_list(frames)).rstrip()
    try:
        data, buffers = dumps(error)
        if not buffers:
            text += EXCEPTION_MARK + base64.b64encode(data).decode()
    except Exception:
        pass  # the caller gets a RemoteError with the text
    return text


def answer_exception(out, error):
    answer(out, exception_text(error).encode(errors="backslashreplace"), failed=True)


def run_chunk(function, star, chunk):
    """A chunk's outcomes: its results in order (None where one failed), and
    {offset: exception_text(error)} for those that failed. Each item runs
    once: list.extend keeps what the map gave before a failure, and the map
    goes on from the next item (the loop runs in C, as multiprocessing's)."""
    results, failures = [], {}
    items = iter(chunk)
    while True:
        try:
            results.extend(itertools.starmap(function, items) if star else map(function, items))
            return results, failures
        except BaseException as error:
            failures[len(results)] = exception_text(error)
            results.append(None)


def unpicklable_results(chunk_outcome):
    """A chunk's outcome with each result that cannot be pickled failed alone."""
    results, failures = chunk_outcome
    for offset, result in enumerate(results):
        if offset not in failures and not picklable(result):
            results[offset] = None
            failures[offset] = exception_text(TypeError(
                f"the result, of type {type(result).__qualname__}, cannot be pickled"))
    return results, failures


def picklable(value):
    try:
        dumps(value)
        return True
    except Exception:
        return False


class Environment:
    """os.environ made the caller's for each job. Most jobs come from the
    program whose environment was applied last (the worker then sends none),
    and leave os.environ as it was: then nothing is done (it would cost more
    than a small job)."""

    def __init__(self):
        self.variables = None  # the caller's, as applied last
        self.after = None      # os.environ's bytes after they were applied

    def apply(self, variables):
        """variables: the caller's environment; None: the last job's."""
        if variables is None:
            variables = self.variables
        now = getattr(os.environ, "_data", None)  # CPython's: bytes -> bytes
        if now is not None and variables == self.variables and now == self.after:
            return
        apply_environment(variables)
        self.variables, self.after = variables, None if now is None else dict(now)


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


class Job:
    """What a job's header sets up: its function, or why its items fail."""

    def __init__(self, header, frames, initialized):
        protocol, paths, _, pickled, max_items = (int(n) for n in header[1:].split())
        self.pickled, self.max_items = bool(pickled), max_items
        self.function, self.failure = None, None
        name = frames[0].decode(errors="surrogateescape")
        callable_, initializer = frames[2], frames[3]
        try:
            if protocol != PROTOCOL:
                raise RuntimeError(f"this loop ({__file__}) speaks protocol {PROTOCOL}, "
                                   f"the worker {protocol}: jobd was upgraded while "
                                   "running; restart it")
            if not self.pickled:
                self.function = resolve(name)
            elif callable_:
                self.function = pickle.loads(callable_)
            if initializer:
                token, function, args = pickle.loads(initializer)
                if token not in initialized:
                    function(*args)
                    initialized.add(token)  # once it ran: a failing one fails each job
        except BaseException as error:  # an import that fails fails every item
            self.failure = error if self.pickled else \
                RuntimeError(f"cannot load {name}: {describe(error)}")

    def run(self, out, frames):
        """Runs one item and answers it."""
        if self.failure is not None:
            if self.pickled:
                answer_exception(out, self.failure)
            else:
                answer(out, str(self.failure).encode(errors="backslashreplace"), failed=True)
            return
        try:
            if not self.pickled:
                result = self.function(*(a.decode(errors="surrogateescape") for a in frames))
            else:
                call = pickle.loads(frames[0], buffers=frames[1:])
                chunk = isinstance(call, list)  # [star, items]: map's chunksize
                if chunk:
                    result = run_chunk(self.function, *call)
                elif self.function is not None:  # call: the arguments
                    result = self.function(*call)
                else:  # call: (function, args, kwargs)
                    result = call[0](*call[1], **call[2])
        except BaseException as error:  # SystemExit too: the item's error, not the end
            if self.pickled:
                answer_exception(out, error)
            else:
                answer(out, describe(error).encode(errors="backslashreplace"), failed=True)
            return
        if self.pickled:
            answer_pickled(out, result, chunk)
        else:
            answer(out, str(result).encode(errors="surrogateescape"))


class Answers:
    """Answers on their way to the worker: what is ready goes out in one
    write, per item reads and writes costing more than a small function; but
    none waits more than ANSWER_DELAY, also while the next item runs long (a
    thread sends it then), so that jobd sees each item end as it ends: its
    timeout, and which item a crash is charged to, follow the answers."""

    def __init__(self, fd):
        self.fd = fd
        self.pending = []
        self.since = 0.0  # when the oldest pending answer came
        self.armed = False  # the thread sends what waits past ANSWER_DELAY
        self.lock = threading.Condition(threading.Lock())  # taken per item: the cheaper lock
        threading.Thread(target=self._send_late, daemon=True).start()

    def append(self, data):
        with self.lock:
            if not self.pending:
                self.since = time.monotonic()
            self.pending.append(data)

    def item_starts(self):
        """The next item runs now: answers that wait must not wait for it
        (the thread is woken only then, not for an item that is answered and
        sent before the next one comes)."""
        if self.pending and not self.armed:
            with self.lock:
                self.armed = True
                self.lock.notify()

    def flush(self):
        with self.lock:
            self._send()

    def _send(self):
        data = memoryview(b"".join(self.pending))  # slices of it copy nothing
        self.pending.clear()
        while data:
            data = data[os.write(self.fd, data):]

    def _send_late(self):
        with self.lock:
            while True:
                if not self.pending:
                    self.armed = False
                    self.lock.wait()
                    continue
                late = self.since + ANSWER_DELAY - time.monotonic()
                if late > 0:
                    self.lock.wait(late)
                elif self.pending:
                    self._send()


def serve():
    # The protocol on descriptors of our own (not inherited by what a
    # function starts); stdin is /dev/null, stdout goes to stderr.
    protocol_in, protocol_out = os.dup(0), os.dup(1)
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
    job = None
    initialized = set()  # the tokens of the Pools whose initializer ran here
    environment = Environment()
    items_run = 0
    buffer = bytearray()
    out = Answers(protocol_out)

    def replace_me():
        """Says this interpreter must be replaced, and exits."""
        out.append(b"!stale\n")
        out.flush()
        os._exit(0)

    while True:
        chunk = os.read(protocol_in, 1 << 16)
        if not chunk:
            return
        buffer += chunk
        start = 0
        while (message := message_at(buffer, start)) is not None:
            header, frames, start = message
            if header is not None:
                paths, variables = (int(n) for n in header[1:].split()[1:3])
                frames = [bytes(f) for f in frames]
                if not first_job and modules.changed():
                    replace_me()
                if first_job:
                    # Fixed for this interpreter: a worker keeps one per path.
                    sys.path[0:0] = [os.fsdecode(p) for p in frames[4:4 + paths]]
                    first_job = False
                os.chdir(frames[1])  # an earlier job may have left elsewhere
                environment.apply(frames[4 + paths:] if variables >= 0 else None)
                importlib.invalidate_caches()  # modules and folders made since the last job
                SEGMENTS.clear()  # the last job's: its mappings go with what uses them
                job = Job(header, frames, initialized)
                modules.note_new()  # what loading the job's function imported
                continue
            if job.max_items and items_run >= job.max_items:
                replace_me()  # maxtasksperchild: a fresh one takes it from here
            items_run += 1
            out.item_starts()
            job.run(out, frames)
        del buffer[:start]
        out.flush()


if __name__ == "__main__":
    serve()
