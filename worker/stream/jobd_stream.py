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
  lines:  an item is a line of stdin; write its result as a line of stdout.
  frames: an item is b"<length>\\n" followed by that many bytes; answer
          b"<length>\\n<bytes>", or b"-<length>\\n<message>" if the item failed.
In lines mode an exception ends the process (jobd retries the item, then
reports it failed with the traceback); in frames mode it fails that item only.
"""

import os
import sys
import traceback

__all__ = ["serve"]


def serve(function, binary=False):
    """Run `function` on every item jobd sends until stdin closes."""
    framed = os.environ.get("JOBD_STREAM", "lines") == "frames"
    decode = (lambda b: b) if binary else (lambda b: b.decode("utf-8", "surrogateescape"))
    encode = (lambda r: r) if binary else (lambda r: str(r).encode("utf-8", "surrogateescape"))
    stdin, stdout = sys.stdin.buffer.raw, sys.stdout.buffer
    buffered = b""
    while True:
        chunk = stdin.read(1 << 16)
        if not chunk:
            break
        buffered += chunk
        out = []
        try:
            if framed:
                buffered = _frames(buffered, function, decode, encode, out)
            else:
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    out.append(encode(function(decode(line))) + b"\n")
        finally:
            # Even when the function raises (or exits), the results before
            # it go out: jobd then knows exactly which item ended the process.
            if out:
                stdout.write(b"".join(out))
                stdout.flush()


def _frames(buffered, function, decode, encode, out):
    """Answers every whole frame in `buffered`; returns what is left."""
    while True:
        newline = buffered.find(b"\n")
        if newline < 0:
            return buffered
        length = int(buffered[:newline])
        end = newline + 1 + length
        if len(buffered) < end:
            return buffered
        item = buffered[newline + 1:end]
        buffered = buffered[end:]
        try:
            result = encode(function(decode(item)))
            out.append(b"%d\n%s" % (len(result), result))
        except Exception:  # the item fails, the stream goes on
            message = traceback.format_exc(limit=3).encode("utf-8", "replace")
            out.append(b"-%d\n%s" % (len(message), message))
