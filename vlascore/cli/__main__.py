"""`python -m vlascore.cli ...` runs the command line."""

from vlascore.cli import main

main()
