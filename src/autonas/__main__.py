"""``python -m autonas``: the `autonas` command (what torchrun's ``-m autonas`` starts)."""

from autonas.cli import main

main()
