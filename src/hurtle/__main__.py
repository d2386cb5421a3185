"""``python -m hurtle``: the same command line as ``hurtle``."""

from hurtle.cli import main

if __name__ == "__main__":
    main()
