from ledgerflow.entrypoints.cli import main

main()
