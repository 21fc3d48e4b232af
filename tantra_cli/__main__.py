from tantra_cli.app import main

main()
