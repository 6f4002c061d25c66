"""The function of bench.py's warm benchmark, with the imports a small real
module has: what a new program pays before its first item unless an
interpreter is kept warm.

  python3 bench/warm_work.py fork|spawn ITEM: starts multiprocessing.Pool(2)
  with that start method and maps identity over the one item, as a new
  program that uses multiprocessing would.
"""
import decimal  # noqa: F401 (the cost of importing is the point)
import email.parser  # noqa: F401
import http.client  # noqa: F401
import json  # noqa: F401
import multiprocessing
import sys
import xml.dom.minidom  # noqa: F401


def identity(item):
    return item


if __name__ == "__main__":
    method, item = sys.argv[1], sys.argv[2]
    with multiprocessing.get_context(method).Pool(2) as pool:
        print(pool.map(identity, [item])[0])
