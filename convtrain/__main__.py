from convtrain.commands import main

main()
