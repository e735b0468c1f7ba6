"""The Dockerfile's pins exist, agree with setup.py, and its COPYs find their files.

Docker itself is not needed: the Dockerfile is parsed here (instructions, ARG
defaults substituted into FROM lines). Every `NAME==VERSION` pin in the
Dockerfile (RUN lines and ARG defaults), in the requirement files it installs
(docker/requirements-tpu.txt) and in setup.py's extras must exist on PyPI, the
index the project installs from; the TPU lock's pins must have a file that
installs on its image's Python. Those checks carry the `network` marker: off
in the default run; offline they are skipped with the reason, and under CI
(`CI` set, as .ci/run runs them) PyPI unreachable is a failure with one line:
a pin nobody could check is not known to work.
"""

import ast
import concurrent.futures
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from packaging import tags
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
PYPI = "https://pypi.org/pypi/{}/json"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")
# glibc of the Debian releases a python:X.Y-slim-<release> tag can name.
GLIBC = {"bookworm": (2, 36)}
# TensorFlow-coupled requirements of setup.py that the TPU lock replaces with their
# 2.20 counterparts (tensorflow -> tensorflow-tpu); see the Dockerfile header.
TPU_REPLACED = {"tensorflow", "tensorflow-text", "tensorboard"}


# ------------------------------------------------------------------ parsing
def _instructions(path=DOCKERFILE):
    """[(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    result, pending = [], ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if line.startswith("#") or not line:
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = pending + line, ""
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _substitute(text, values):
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text
    )


@functools.lru_cache(maxsize=None)
def _stages():
    """ARG defaults before the first FROM, and [(stage name, image as built, [(instr, args)])]."""
    global_args, stages = {}, []
    for keyword, rest in _instructions():
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name] = default.strip('"')
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            name = name or f"stage {len(stages)} (unnamed)"
            stages.append((name, _substitute(words[0], global_args), []))
        else:
            stages[-1][2].append((keyword, rest))
    return global_args, stages


def _stage_names():
    return {name for name, _, _ in _stages()[1]}


def _registry_images():
    """(stage name, image) of the stages built FROM a registry image, not a stage."""
    return [(name, image) for name, image, _ in _stages()[1] if image not in _stage_names()]


def _copies():
    """(stage name, sources, destination) of every COPY/ADD from the build context."""
    found = []
    for name, _, body in _stages()[1]:
        for keyword, rest in body:
            if keyword in ("COPY", "ADD"):
                words = shlex.split(rest)
                flags = [w for w in words if w.startswith("--")]
                paths = [w for w in words if not w.startswith("--")]
                if not any(w.startswith("--from=") for w in flags):
                    found.append((name, paths[:-1], paths[-1]))
    return found


def _requirement_files():
    """Repository paths of the files a RUN installs with `pip install -r`."""
    files = set()
    for name, _, body in _stages()[1]:
        copied = {}  # path in the image -> path in the repository
        for stage, sources, destination in _copies():
            if stage == name and len(sources) == 1:
                copied[destination] = sources[0]
        for keyword, rest in body:
            if keyword == "RUN" and "pip" in rest:
                for match in re.finditer(r"(?:-r|--requirement)[ =](\S+)", rest):
                    path = match.group(1)
                    assert path in copied, f"{path} is installed but not COPYed into the stage"
                    files.add(copied[path])
    # and any other requirement file kept for the images
    if os.path.isdir(os.path.join(ROOT, "docker")):
        files.update(
            f"docker/{n}" for n in os.listdir(os.path.join(ROOT, "docker")) if n.endswith(".txt")
        )
    return sorted(files)


def _pins_in_file(relative):
    pins = []
    with open(os.path.join(ROOT, relative), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                match = PIN.match(line)
                assert match, f"{relative}: {line!r} is not a NAME==VERSION pin"
                pins.append(match.groups())
    return pins


def _dockerfile_pins():
    """NAME==VERSION in RUN lines and in ARG defaults (build-arg pins)."""
    pins = []
    global_args, stages = _stages()
    texts = list(global_args.values())
    for _, _, body in stages:
        for keyword, rest in body:
            if keyword == "RUN" or keyword == "ARG":
                texts.append(rest.partition("=")[2] if keyword == "ARG" else rest)
    for text in texts:
        for word in text.replace('"', " ").replace("'", " ").split():
            match = PIN.match(word)
            if match:
                pins.append(match.groups())
    return pins


def _setup_py():
    """install_requires, extras_require and python_requires of setup.py, unexecuted."""
    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    call = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup"
    )
    kwargs = {k.arg: k.value for k in call.keywords}
    return (
        [Requirement(r) for r in ast.literal_eval(kwargs["install_requires"])],
        {
            extra: [Requirement(r) for r in requirements]
            for extra, requirements in ast.literal_eval(kwargs["extras_require"]).items()
        },
        SpecifierSet(ast.literal_eval(kwargs["python_requires"])),
    )


def _extras_pins():
    return [
        (r.name, next(iter(r.specifier)).version)
        for reqs in _setup_py()[1].values()
        for r in reqs
        if len(r.specifier) == 1 and next(iter(r.specifier)).operator == "=="
    ]


def _tpu_stage():
    """(image, lock file) of the stage that installs the TPU lock."""
    (name, image), = [(n, i) for n, i in _registry_images() if n == "runtime-tpu"]
    (lock,) = [f for s, src, _ in _copies() if s == name for f in src if f.endswith(".txt")]
    return image, lock


# ------------------------------------------------------------------ PyPI
def _fetch(name):
    try:
        with urllib.request.urlopen(PYPI.format(name), timeout=20) as response:
            return name, json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return name, None  # no such project
        raise


@pytest.fixture(scope="module")
def pypi():
    """{canonical name: PyPI JSON or None} for every pinned name and base-image version."""
    names = {n for n, _ in _dockerfile_pins() + _extras_pins()}
    for relative in _requirement_files():
        names.update(n for n, _ in _pins_in_file(relative))
    names.add("tensorflow")  # the GPU image's tag is checked against it
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            return {canonicalize_name(n): d for n, d in pool.map(_fetch, sorted(names))}
    except (urllib.error.URLError, OSError, ValueError) as error:  # ValueError: not JSON
        reason = getattr(error, "reason", error)
        message = (f"PyPI is unreachable ({PYPI.format('NAME')}: {reason}); the Dockerfile's "
                   "pins cannot be checked without it.")
        if not os.environ.get("CI"):
            pytest.skip(f"offline: {message}")
        pytest.fail(message, pytrace=False)


def _files(pypi, name, version):
    """The non-yanked files of NAME==VERSION on PyPI; fails when there are none."""
    data = pypi[canonicalize_name(name)]
    assert data is not None, f"{name} is not a project on PyPI"
    releases = {Version(v): files for v, files in data["releases"].items() if _is_version(v)}
    files = [f for f in releases.get(Version(version), []) if not f.get("yanked")]
    assert files, f"{name}=={version} is not on PyPI (or all its files are yanked)"
    return files


def _is_version(text):
    try:
        Version(text)
        return True
    except ValueError:
        return False


def _supported_tags(image):
    """Wheel tags that install on a python:X.Y-slim-<debian> image, x86_64."""
    match = re.fullmatch(r"python:(\d+)\.(\d+)[.\d]*-slim-(\w+)", image)
    assert match, f"{image}: expected a python:X.Y-slim-<debian release> image"
    python, release = (int(match.group(1)), int(match.group(2))), match.group(3)
    assert release in GLIBC, f"{image}: add the glibc of Debian {release} to GLIBC"
    major, minor = GLIBC[release]
    platforms = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    abi = f"cp{python[0]}{python[1]}"
    return set(tags.cpython_tags(python, [abi], platforms)) | set(
        tags.compatible_tags(python, abi, platforms)
    )


# ------------------------------------------------------------------ tests
@pytest.mark.network
def test_every_pin_exists_on_pypi(pypi):
    pins = _dockerfile_pins() + _extras_pins()
    for relative in _requirement_files():
        pins += _pins_in_file(relative)
    names = {canonicalize_name(n) for n, _ in pins}
    assert "tensorflow-tpu" in names, "the TPU lock is not among the pins checked"
    for name, version in pins:
        _files(pypi, name, version)


@pytest.mark.network
def test_tpu_lock_installs_on_its_image(pypi):
    image, lock = _tpu_stage()
    supported = _supported_tags(image)
    for name, version in _pins_in_file(lock):
        files = _files(pypi, name, version)
        ok = any(
            f["packagetype"] == "sdist"
            or (
                f["filename"].endswith(".whl")
                and not supported.isdisjoint(parse_wheel_filename(f["filename"])[3])
            )
            for f in files
        )
        assert ok, f"{name}=={version} has no wheel or sdist for {image} (x86_64)"


def test_tpu_lock_is_coherent_with_setup_py():
    """The lock keeps `tensorflow` out, moves the TF-coupled packages to
    tensorflow-tpu's minor release together, and pins every other requirement
    of setup.py at a version setup.py accepts."""
    _, lock = _tpu_stage()
    pins = {canonicalize_name(n): Version(v) for n, v in _pins_in_file(lock)}
    assert "tensorflow" not in pins, (
        f"{lock} pins `tensorflow`: it would overwrite tensorflow-tpu's `tensorflow` package"
    )
    tf = pins["tensorflow-tpu"]
    for name in ("tensorflow-text", "tensorboard"):
        assert pins[name].release[:2] == tf.release[:2], (
            f"{lock}: {name} {pins[name]} does not match tensorflow-tpu {tf}"
        )
    install_requires, _, _ = _setup_py()
    for requirement in install_requires:
        name = canonicalize_name(requirement.name)
        if name in TPU_REPLACED:
            continue
        assert name in pins, f"{lock} lacks {requirement.name}, which setup.py requires"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock}: {requirement.name}=={pins[name]} does not satisfy setup.py's {requirement}"
        )


@pytest.mark.network
def test_base_images_are_pinned_and_agree_with_setup_py(pypi):
    install_requires, _, python_requires = _setup_py()
    tensorflow = next(r for r in install_requires if r.name == "tensorflow")
    for stage, image in _registry_images():
        repository, _, tag = image.partition(":")
        assert tag and tag != "latest" and "$" not in image, f"{stage}: {image} is not pinned"
        if repository == "tensorflow/tensorflow":
            # the image's tensorflow must satisfy setup.py, or pip replaces it
            version = tag.split("-")[0]
            assert tensorflow.specifier.contains(version), (
                f"{stage}: {image} has tensorflow {version}; setup.py wants {tensorflow}"
            )
            _files(pypi, "tensorflow", version)
        elif repository == "python":
            version = re.match(r"\d+\.\d+", tag).group(0)
            assert python_requires.contains(version + ".0"), (
                f"{stage}: {image} has Python {version}; setup.py wants {python_requires}"
            )
        else:
            pytest.fail(f"{stage}: {image}: teach this test the image's versions", pytrace=False)


def test_default_accelerator_and_stage_references_resolve():
    global_args, stages = _stages()
    names = _stage_names()
    final_image = stages[-1][1]
    assert final_image in names, f"the final FROM resolves to {final_image!r}, not a stage"
    for accelerator in ("gpu", "tpu"):
        assert f"runtime-{accelerator}" in names
    for _, _, body in stages:
        for keyword, rest in body:
            match = re.search(r"--from=(\S+)", rest) if keyword == "COPY" else None
            if match:
                assert match.group(1) in names, f"COPY --from={match.group(1)}: no such stage"


def test_copy_sources_exist_and_are_in_the_build_context():
    with open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8") as f:
        ignore = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore is expected to let in only what is listed"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    for stage, sources, _ in _copies():
        for source in sources:
            assert os.path.exists(os.path.join(ROOT, source)), f"{stage}: COPY {source}: missing"
            top = source.split("/")[0]
            assert top in allowed, f"{stage}: COPY {source}: .dockerignore leaves {top} out"


def test_hadolint_passes():
    """CI runs this too (.ci/run); here when hadolint is installed (the test extra)."""
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [hadolint, "--failure-threshold", "warning", DOCKERFILE], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
