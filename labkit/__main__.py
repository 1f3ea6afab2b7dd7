"""`python -m labkit warm`: convert and cache the embedded model now (binder/postBuild, `make`)."""
import sys
import time

from .models import embedded_cache, load


def main(argv: list[str]) -> int:
    if argv[:1] != ["warm"]:
        print("usage: python -m labkit warm    # convert and cache the embedded model once")
        return 2
    t0 = time.perf_counter()
    lm = load()
    print(f"labkit: {lm.name} ready in {time.perf_counter() - t0:.1f} s (cache: {embedded_cache()})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
