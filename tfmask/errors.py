"""Errors that tfmask reports to a user in one line (no traceback)."""


class ConfigError(ValueError):
    """A bad configuration; the message is one line naming the key and the fix."""


class RunError(ValueError):
    """A run that cannot start or go on (a locked folder, no data, ...): one line."""


class TrainingDiverged(RuntimeError):
    """The loss or gradient became NaN/Inf; nothing was saved from that step on."""


class Interrupted(RuntimeError):
    """SIGTERM or SIGINT: a checkpoint of `step` is saved; `during` names
    the stage that was stopped (the evaluation, the export), if not training."""

    def __init__(self, signal_number, step, during=None):
        import signal

        self.signal_number = signal_number
        self.step = step
        where = f" during the {during}" if during else ""
        super().__init__(f"stopped by {signal.Signals(signal_number).name} at step {step}{where}; "
                         "a checkpoint was saved: rerun the same command to resume.")
