"""``python -m flatqc``: the same as the ``flatqc`` command."""

from flatqc.cli import main

main()
