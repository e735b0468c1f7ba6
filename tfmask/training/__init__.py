"""Training: the config schema, the trainer, the run folder (lock, resume
check, atomic writes), strategies and schedules; each family's data and model
come from its task (`tfmask.tasks`). The command line is `python -m tfmask.train`."""
