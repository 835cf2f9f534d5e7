"""Run robaccia-admin as python -m robaccia."""

from robaccia.cli import main

main()
