"""``python -m aiomodelkit``: the command line, as the ``aiomodelkit`` script."""

from ._cli import main

if __name__ == "__main__":
    main()  # pragma: no cover - runs as `python -m aiomodelkit` in the subprocess tests
