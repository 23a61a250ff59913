def check_stack(experiment):
    return []
