"""`python -m autonas`: the `autonas` command."""

from .cli import main

main()
