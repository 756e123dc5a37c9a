"""`python -m loupe` is the `loupe` command."""

from loupe.cli import main

if __name__ == "__main__":
    main()
