"""Make a Python function a jobd stream function: one call away.

    # upper.py
    import jobd_stream
    jobd_stream.serve(lambda item: item.upper())

    $ jobctl map --stream 'python3 upper.py' < words.txt

Each jobd worker starts the script once for the job (a warm interpreter per
core) and feeds it items; serve() reads them, calls the function and writes
one result per item, in order, many at a time. The function takes and returns
str (bytes with binary=True). The protocol, for other languages, is in
$JOBD_STREAM mode:
  lines:  an item is a line of stdin; write its result as a line of stdout,
          or b"\x15<message>" (the NAK byte first) if the item failed.
  frames: an item is b"<length>\\n" followed by that many bytes; answer
          b"<length>\\n<bytes>", or b"-<length>\\n<message>" if the item failed.
For `jobctl starmap` ($JOBD_STARMAP=1) an item has several arguments, and the
function is called with all of them: in lines mode they are the tab-separated
fields of the line; in frames mode an item is b"*<count>\n" followed by one
frame per argument.
An exception fails that item only, once, with its message; only a dying
process is a crash (jobd then retries the item it was on).
"""

import os
import sys
import traceback

__all__ = ["serve"]


def serve(function, binary=False):
    """Run `function` on every item jobd sends until stdin closes."""
    framed = os.environ.get("JOBD_STREAM", "lines") == "frames"
    starmap = os.environ.get("JOBD_STARMAP") == "1"
    decode = (lambda b: b) if binary else (lambda b: b.decode("utf-8", "surrogateescape"))
    call = (lambda args: function(*map(decode, args))) if starmap else (lambda arg: function(decode(arg)))
    encode = (lambda r: r) if binary else (lambda r: str(r).encode("utf-8", "surrogateescape"))
    # The protocol gets its own descriptor; print() and anything else written
    # to stdout goes to stderr, so it cannot shift the results.
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer.raw
    buffered = b""
    while True:
        chunk = stdin.read(1 << 16)
        if not chunk:
            break
        buffered += chunk
        out = []
        try:
            if framed:
                buffered = _frames(buffered, call, starmap, encode, out)
            else:
                end = buffered.rfind(b"\n")
                if end >= 0:
                    block, buffered = buffered[:end], buffered[end + 1:]
                    _lines(block, function, starmap, binary, out)
        finally:
            # Even when the function raises (or exits), the results before
            # it go out: jobd then knows exactly which item ended the process.
            if out:
                stdout.write(b"".join(out))
                stdout.flush()


def _lines(block, function, starmap, binary, out):
    """Answers every line of `block` (whole lines, its last newline cut off).

    The block is decoded and its results encoded at once, not line by line:
    for a cheap function that is most of the cost."""
    text = block if binary else block.decode("utf-8", "surrogateescape")
    newline, tab = (b"\n", b"\t") if binary else ("\n", "\t")
    results = []
    append = results.append
    for line in text.split(newline):
        try:
            result = function(*line.split(tab)) if starmap else function(line)
        except Exception as error:  # the item's error, on one line
            message = " ".join(traceback.format_exception_only(type(error), error)[-1].split())
            result = (b"\x15" + message.encode("utf-8", "replace")) if binary else "\x15" + message
        else:
            if not binary:
                result = str(result)
            if (b"\n" if binary else "\n") in result:
                message = ("a result contains a newline, which the line protocol cannot "
                           "carry; use jobctl's --framed")
                result = (b"\x15" + message.encode()) if binary else "\x15" + message
        append(result)
    joined = newline.join(results)
    out.append((joined if binary else joined.encode("utf-8", "surrogateescape")) + b"\n")


def _frame(buffered, start):
    """The frame at `start`: (bytes, end), or None if it is not all there."""
    newline = buffered.find(b"\n", start)
    if newline < 0:
        return None
    end = newline + 1 + int(buffered[start:newline])
    return (buffered[newline + 1:end], end) if len(buffered) >= end else None


def _frames(buffered, call, starmap, encode, out):
    """Answers every whole item in `buffered`; returns what is left."""
    while True:
        if starmap:  # b"*<count>\n", then a frame per argument
            newline = buffered.find(b"\n")
            if newline < 0:
                return buffered
            args, end = [], newline + 1
            for _ in range(int(buffered[1:newline])):
                frame = _frame(buffered, end)
                if frame is None:
                    return buffered
                args.append(frame[0])
                end = frame[1]
            item = args
        else:
            frame = _frame(buffered, 0)
            if frame is None:
                return buffered
            item, end = frame
        buffered = buffered[end:]
        try:
            result = encode(call(item))
            out.append(b"%d\n%s" % (len(result), result))
        except Exception:  # the item fails, the stream goes on
            message = traceback.format_exc(limit=3).encode("utf-8", "replace")
            out.append(b"-%d\n%s" % (len(message), message))
