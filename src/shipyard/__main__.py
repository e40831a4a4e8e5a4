"""``python -m shipyard``: the same command line as ``shipyard``."""

from shipyard.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
