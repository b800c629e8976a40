"""`python -m autonas`: the `autonas` command (what torchrun's ``-m autonas`` starts)."""

from .cli import main

main()
