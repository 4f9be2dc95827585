"""``python -m bench``: run every benchmark."""

from bench.storage import main

if __name__ == "__main__":
    main()
