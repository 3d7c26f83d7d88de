"""``make bench``: Headwater against nginx on the same bytes in the same run, plus publish latency.

``python -m bench.run --help`` lists the flags; ``bench.run`` is the orchestration, the other modules are
the pieces (nginx, wrk, publish latency, fixture selection, report).
"""
