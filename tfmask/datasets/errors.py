"""The errors of `tfmask.datasets`; each message is one line that names the fix."""


def prepare_command(name, force=False):
    return f"python -m tfmask.datasets prepare {name}" + (" --force" if force else "")


class UnknownDatasetError(ValueError):
    """A name that is not registered (the message lists the known names)."""


class DatasetNotPreparedError(FileNotFoundError):
    """The dataset's parsed cache does not exist yet.

    Example:
    >>> str(DatasetNotPreparedError.for_dataset("austen", "/tmp/cache"))
    "Dataset 'austen' is not prepared in /tmp/cache; run: python -m tfmask.datasets prepare austen"
    """

    @classmethod
    def for_dataset(cls, name, data_dir):
        return cls(f"Dataset {name!r} is not prepared in {data_dir}; run: {prepare_command(name)}")


class CacheCorruptError(ValueError):
    """A parsed cache file does not match the checksum written when it was prepared."""


class FetchError(RuntimeError):
    """A source package could not be downloaded or unpacked."""


class SourceFormatError(ValueError):
    """A source file inside a package is corrupt, truncated or not in the expected format."""
