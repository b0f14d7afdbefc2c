"""What DIR methods do to the data and the features that is not a loss: sample weights (inverse,
square-root inverse, LDS: :mod:`~dirlib.rebalancing.weighting`), feature distribution smoothing
(:mod:`~dirlib.rebalancing.fds`), SMOTER / SMOGN oversampling (:mod:`~dirlib.rebalancing.smoter`) and
the running per-bucket feature statistics that FDS and VIR's PRM share
(:mod:`~dirlib.rebalancing.bucket_stats`). The methods in :mod:`dirlib.methods` build on them; the
losses are in :mod:`dirlib.losses`."""
