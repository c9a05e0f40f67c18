"""``python -m giflab_dask.cli``: the ``giflab-dask`` command line."""

from giflab_dask.cli import main

if __name__ == "__main__":
    main()
