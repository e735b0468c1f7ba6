"""Training: the config schema, tasks (data + model per family), the trainer,
strategies and schedules. The command line is `python -m tfmask.train`."""
