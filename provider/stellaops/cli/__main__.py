"""``python -m stellaops.cli``: the same as the ``stella`` command."""

from . import main

if __name__ == "__main__":
    main()
