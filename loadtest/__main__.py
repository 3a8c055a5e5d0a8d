"""`python -m loadtest`: the load tester (`intercept-loadtest`)."""

from loadtest.cli import main

main()
