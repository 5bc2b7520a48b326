"""The training loop and its parts:

    loop.py        train_and_evaluate: data -> step -> evaluate -> checkpoint -> report
    steps.py       the train state, the jitted train and predict steps, the device mesh
    optim.py       optimizers by name (OPTIMIZERS), learning-rate schedules
    losses.py      losses by name (LOSSES)
    distill.py     distillation from a frozen teacher
    cadence.py     when a step logs, evaluates and checkpoints
    budget.py      planning the run to a wall-clock budget
    checkpoint.py  Orbax checkpoints with checksums
    resume.py      what a resumed run must find unchanged (settings, data)
    report.py      the metrics log, report.json and its pictures
    validate.py    config checks, one line per problem

A new optimizer or loss is one function and one line in its table.
"""
