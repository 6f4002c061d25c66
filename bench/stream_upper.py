#!/usr/bin/env python3
"""The jobd side of bench.py's stream benchmark: a jobd stream function.

    jobctl map --stream 'python3 bench/stream_upper.py' < lines

Each worker runs this once for the job; it upper-cases every item it is fed,
through worker/stream/jobd_stream.py (found relative to this file).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "worker" / "stream"))
import jobd_stream  # noqa: E402 (needs the path above)

jobd_stream.serve(lambda item: item.upper())
