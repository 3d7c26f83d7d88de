"""The router of a Kubernetes deployment: the local cluster's nginx front, fed by DNS.

``discovery`` (pure) turns what DNS says into the front's ``Topology``: the packagers by their stable
StatefulSet names (so the consistent-hash ring is keyed by names, not pod IPs, and a packager that
restarts with a new IP keeps its channels), the ingest nodes by the addresses of their headless
Service. ``__main__`` is the process: it polls DNS, renders ``services/cluster/nginx_conf.py`` and
runs nginx as its child, reloading it when the answer changes.
"""
