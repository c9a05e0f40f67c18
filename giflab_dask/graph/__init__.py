"""A batch's task graph: what its tasks do on the workers (:mod:`.tasks`) and how the planner
assembles them (:mod:`.build`). Planning itself is :mod:`giflab_dask.pipeline`."""
