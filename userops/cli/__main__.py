"""``python -m userops.cli`` is the ``userops`` command."""
from userops.cli import main

main()
