from relaynet.cli import main

main()
