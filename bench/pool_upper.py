#!/usr/bin/env python3
"""The Python side of bench.py's stream benchmark.

Reads the lines of stdin, runs multiprocessing.Pool(WORKERS).map(upper, lines)
(map's default chunk size) and prints the results, one per line: the same work
as `jobctl map --stream 'python3 bench/stream_upper.py'`. bench.py times the
whole command, interpreter and pool start included.
"""
import argparse
import multiprocessing
import sys


def upper(item):
    return item.upper()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="pool size (default 2)")
    args = parser.parse_args()

    lines = sys.stdin.read().splitlines()
    with multiprocessing.Pool(args.workers) as pool:
        results = pool.map(upper, lines)
    sys.stdout.write("".join(result + "\n" for result in results))


if __name__ == "__main__":
    main()
