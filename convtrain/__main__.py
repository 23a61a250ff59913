from convtrain.commands import entry

entry()
