"""What the Dockerfiles and dev.sh install, checked against the project's dependency lists, and
the loader installed alone into a fresh virtualenv, as Dockerfile.run installs it, running a bundle.

No Docker engine runs here, so the images cannot be built; these tests keep the files honest and
do what Dockerfile.run's COPY and RUN lines do, outside a container.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.bpfrun_run import BPFTC, bpfrun_command, needs_bpf
from tests.runtime.harness import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOADER_PYPROJECT = tomllib.loads((ROOT / "packaging/bpfrun/pyproject.toml").read_text())
COMPILER_ONLY = {"lark", "llvmlite"}
LOADER_PACKAGES = {"bpfrun", "common"}
# Loader dependencies Dockerfile.run takes from Debian rather than PyPI (its venv sees them through
# --system-site-packages), and the Debian packages that build the loader's package there.
FROM_DEBIAN = {"cryptography": "python3-cryptography"}
BUILD_FROM_DEBIAN = {"python3-setuptools", "python3-wheel"}


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def dockerfile_text(dockerfile: str) -> str:
    return (ROOT / dockerfile).read_text().replace("\\\n", " ")  # join continued lines


def pip_install_arguments(dockerfile: str) -> list[list[str]]:
    return [shlex.split(line) for line in re.findall(r"pip install ([^&\n]*)", dockerfile_text(dockerfile))]


def pip_installs(dockerfile: str) -> list[str]:
    return [arguments[-1] for arguments in pip_install_arguments(dockerfile)]


def copies(dockerfile: str) -> dict[str, str]:
    """COPY lines: each source (a file or directory of the checkout) → its destination."""
    result = {}
    for line in re.findall(r"^COPY (.*)$", dockerfile_text(dockerfile), re.MULTILINE):
        *sources, destination = line.split()
        for source in sources:
            result[source] = destination + Path(source).name if destination.endswith("/") else destination
    return result


def apt_installs(text: str) -> set[str]:
    packages = set()
    for line in re.findall(r"apt-get install ([^&\n]*)", text):
        packages |= {word for word in line.split() if not word.startswith("-")}
    return packages


def test_loader_dependencies_leave_out_the_compiler():
    assert requirement_names(PYPROJECT["project"]["dependencies"]) == {"msgpack", "click", "cryptography"}
    assert requirement_names(PYPROJECT["project"]["optional-dependencies"]["compiler"]) == COMPILER_ONLY


def test_the_loader_package_is_the_project_without_the_compiler():
    loader, project = LOADER_PYPROJECT["project"], PYPROJECT["project"]
    assert (loader["name"], loader["version"]) == ("bpfrun", project["version"])
    assert loader["dependencies"] == project["dependencies"]
    assert loader["requires-python"] == project["requires-python"]
    assert loader["scripts"] == {"bpfrun": project["scripts"]["bpfrun"]}
    assert set(LOADER_PYPROJECT["tool"]["setuptools"]["packages"]) == LOADER_PACKAGES
    assert "optional-dependencies" not in loader
    assert LOADER_PYPROJECT["build-system"] == PYPROJECT["build-system"]


def test_run_image_copies_and_installs_only_the_loader():
    assert copies("Dockerfile.run") == {
        "packaging/bpfrun/pyproject.toml": "/src/pyproject.toml",
        "bpfrun": "/src/bpfrun",
        "common": "/src/common",
    }
    assert pip_installs("Dockerfile.run") == ["/src"]
    assert "--no-deps" not in pip_install_arguments("Dockerfile.run")[0]


def test_run_image_takes_from_debian_what_pip_does_not_bring():
    apt = apt_installs(dockerfile_text("Dockerfile.run"))
    assert {"python3", "python3-venv", "python3-bpfcc", "libbpf1", "libseccomp2"} <= apt
    assert BUILD_FROM_DEBIAN <= apt  # pip install --no-build-isolation builds with Debian's setuptools
    assert "--no-build-isolation" in pip_install_arguments("Dockerfile.run")[0]
    assert "--system-site-packages" in dockerfile_text("Dockerfile.run")
    dependencies = requirement_names(LOADER_PYPROJECT["project"]["dependencies"])
    assert {FROM_DEBIAN[name] for name in dependencies if name in FROM_DEBIAN} <= apt
    # No compiler package from Debian, and no bpftc at all.
    assert not any(name in package for package in apt for name in COMPILER_ONLY)
    assert "bpftc" not in dockerfile_text("Dockerfile.run")


def test_compile_image_installs_the_compiler_extra():
    assert pip_installs("Dockerfile.compile") == ["/src[compiler]"]
    assert "USER nobody" in (ROOT / "Dockerfile.compile").read_text()


def test_compile_image_copies_every_package_pyproject_lists():
    packages = {name.split(".")[0] for name in PYPROJECT["tool"]["setuptools"]["packages"]}
    assert {package: f"/src/{package}" for package in packages}.items() <= copies("Dockerfile.compile").items()


def test_dev_script_installs_what_the_loader_needs_from_debian():
    listed = re.search(r"APT_PACKAGES=\(([^)]*)\)", (ROOT / "dev.sh").read_text()).group(1).split()
    assert {"python3-bpfcc", "libbpf1", "python3-venv", "bpftool", *FROM_DEBIAN.values()} <= set(listed)
    assert "'.[compiler,test]'" in (ROOT / "dev.sh").read_text()


def test_loader_modules_import_no_compiler():
    code = (
        "import sys, importlib, pkgutil, bpfrun\n"
        "for module in pkgutil.iter_modules(bpfrun.__path__):\n"
        "    importlib.import_module('bpfrun.' + module.name)\n"
        "bad = [name for name in sys.modules if name.split('.')[0] in ('lark', 'llvmlite', 'bpftc', 'bcc')]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


# The loader installed alone, as Dockerfile.run installs it: its COPY lines into a directory, its pip
# command into a fresh virtualenv of Debian's python3 (which has cryptography, setuptools and bcc).


@pytest.fixture(scope="module")
def loader_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("loader")
    source = base / "src"
    for origin, destination in copies("Dockerfile.run").items():
        target = source / Path(destination).relative_to("/src")
        if (ROOT / origin).is_dir():
            shutil.copytree(ROOT / origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / origin, target)
    venv = base / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], check=True)
    arguments = [
        str(source) if argument == "/src" else argument for argument in pip_install_arguments("Dockerfile.run")[0]
    ]
    installed = subprocess.run([venv / "bin/pip", "install", *arguments], capture_output=True, text=True, cwd=base)
    if installed.returncode != 0 and "No matching distribution found" in installed.stderr:
        pytest.skip(f"pip cannot reach msgpack and click here: {installed.stderr.strip().splitlines()[-1]}")
    assert installed.returncode == 0, installed.stderr
    return venv


def test_the_loader_installs_alone_without_the_compiler(loader_venv: Path) -> None:
    python = loader_venv / "bin/python"
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    )
    distributions = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert {"bpfrun", "msgpack", "click", "cryptography"} <= distributions
    assert not distributions & {"bpftc", *COMPILER_ONLY}
    assert not (loader_venv / "bin/bpftc").exists()
    code = (
        "import importlib.util, bpfrun, common\n"
        "print(bpfrun.__file__.startswith(sys.prefix), common.__file__.startswith(sys.prefix))\n"
        "print([name for name in ('bpftc', 'lark', 'llvmlite') if importlib.util.find_spec(name)])\n"
    )
    result = subprocess.run([python, "-c", "import sys\n" + code], capture_output=True, text=True, cwd=loader_venv)
    assert (result.returncode, result.stdout) == (0, "True True\n[]\n"), result.stderr


def test_the_loader_alone_inspects_a_bundle(loader_venv: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "hello.bpfb"
    compiled = subprocess.run([BPFTC, "-e", HELLO, "-o", bundle], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    result = subprocess.run(
        [loader_venv / "bin/bpfrun", "inspect", bundle], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0 and "begin" in result.stdout, result.stderr


HELLO = 'begin { printf("hello from the loader alone\\n"); exit(); }'


@needs_bpf
def test_the_loader_alone_runs_a_bundle_the_compiler_built(loader_venv: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "hello.bpfb"
    compiled = subprocess.run([BPFTC, "-e", HELLO, "-o", bundle], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    result = subprocess.run(
        [loader_venv / "bin/bpfrun", "-q", bundle], capture_output=True, text=True, cwd=tmp_path, timeout=30
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello from the loader alone\n\n\n", "")


# docs/daemonset.yaml, README's example: the commands its containers run, run here on a bundle
# signed as README says, with the ConfigMap's files where the pod would mount them.


def test_the_daemonset_example_is_a_pod_with_a_check_and_a_run() -> None:
    yaml = pytest.importorskip("yaml")
    daemonset = yaml.safe_load((ROOT / "docs/daemonset.yaml").read_text())
    pod = daemonset["spec"]["template"]["spec"]
    (check,), (run,) = pod["initContainers"], pod["containers"]
    assert check["image"] == run["image"] and pod["hostPID"]
    assert check["args"][0] == "--check" and "--trust" in check["args"] and "--trust" in run["args"]
    assert run["args"][:2] == ["-f", "json"]
    mounts = {mount["mountPath"]: mount["name"] for mount in run["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes[mounts["/bundle"]]["configMap"] and volumes[mounts["/sys"]]["hostPath"]["path"] == "/sys"
    # README shows the same containers
    readme = (ROOT / "README.md").read_text()
    for container in (check, run):
        assert f"args: {json.dumps(container['args'])}" in readme


@needs_bpf
def test_the_daemonset_commands_check_and_run_a_signed_bundle(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    pod = yaml.safe_load((ROOT / "docs/daemonset.yaml").read_text())["spec"]["template"]["spec"]
    key, public = tmp_path / "ci-key.pem", tmp_path / "trusted.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", public], check=True, capture_output=True)
    bundle = tmp_path / "read.bpfb"
    compiled = subprocess.run([BPFTC, "--sign", key, "-e", HELLO, "-o", bundle], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    again = subprocess.run([BPFTC, "--sign", key, "-e", HELLO, "-o", "-"], capture_output=True)
    assert again.stdout == bundle.read_bytes()  # ed25519 signs deterministically: signed bundles reproduce too

    def here(arguments: list[str]) -> list[str]:
        return [
            str(tmp_path / Path(argument).name) if argument.startswith("/bundle/") else argument
            for argument in arguments
        ]

    check = subprocess.run(bpfrun_command(*here(pod["initContainers"][0]["args"])), capture_output=True, text=True)
    assert (check.returncode, json.loads(check.stdout)) == (0, {"ok": True, "missing": []}), check.stderr
    run = subprocess.run(
        bpfrun_command(*here(pod["containers"][0]["args"])), capture_output=True, text=True, timeout=30
    )
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert run.returncode == 0 and {"type": "printf", "data": "hello from the loader alone\n"} in lines, run.stderr
