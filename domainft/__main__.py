from domainft.cli import main

main()
