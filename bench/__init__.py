"""A3S Power benchmarks: speed and responsiveness, each figure a ratio to a baseline from
the same run. See bench/README.md; run with ``python -m bench all`` or one benchmark."""
