from zetactl.cli.app import main

main()
