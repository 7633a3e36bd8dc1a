"""``python -m gateway`` runs the CLI."""

from gateway.cli.main import main

main()
