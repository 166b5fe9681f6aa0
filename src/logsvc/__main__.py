from logsvc.command import main

main()
