"""Tools around the core library: many runs at once (``sweep``: local, Ray, SLURM), tuning on
validation data (``tune``), speed and memory benchmarks (``bench``, ``throughput``), the machine's
description (``machine``) and rerunning a stored record (``reproduce``).

They sit on the core library (``dirlib`` itself) and never import the paper's companion
(``dirlib.paper``).
"""
