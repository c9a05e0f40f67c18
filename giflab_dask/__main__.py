"""``python -m giflab_dask``: the ``giflab-dask`` command line."""

from giflab_dask.cli import main

if __name__ == "__main__":
    main(prog_name="giflab-dask")
