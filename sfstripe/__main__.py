from sfstripe.cli import main

main()
