"""The functions of the jobd.Pool benchmarks (python_bench.py), in a module
of their own: jobd.Pool sends them by reference, as a user's module."""

import urllib.request


def identity(item):
    return item


def busy(n):
    """Pure-Python CPU work: the number of primes below n, by trial division."""
    count = 0
    for candidate in range(2, n):
        divisor = 2
        while divisor * divisor <= candidate:
            if candidate % divisor == 0:
                break
            divisor += 1
        else:
            count += 1
    return count


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return len(response.read())
