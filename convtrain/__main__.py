from convtrain.cli import main

main()
