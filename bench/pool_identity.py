#!/usr/bin/env python3
"""The Python side of bench.py's overhead benchmark.

Runs multiprocessing.Pool(WORKERS).map(identity, items, chunksize=1) over the
strings "1".."ITEMS" and prints {"items": N, "seconds": S, "items_per_s": R} as
JSON. Only the map call is timed: starting the pool is not.
"""
import argparse
import json
import multiprocessing
import time


def identity(item):
    return item


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000, help="how many items (default 100000)")
    parser.add_argument("--workers", type=int, default=2, help="pool size (default 2)")
    args = parser.parse_args()

    items = [str(i) for i in range(1, args.items + 1)]
    with multiprocessing.Pool(args.workers) as pool:
        start = time.perf_counter()
        results = pool.map(identity, items, chunksize=1)
        seconds = time.perf_counter() - start
    if results != items:
        raise SystemExit("pool_identity: the results differ from the items")
    print(json.dumps({"items": len(items), "seconds": seconds, "items_per_s": len(items) / seconds}))


if __name__ == "__main__":
    main()
