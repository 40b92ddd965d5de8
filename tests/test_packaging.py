"""What the Dockerfiles and dev.sh install, checked against the project's dependency lists.

No Docker engine runs here, so the images cannot be built; these tests keep the files honest.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from tests.runtime.harness import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COMPILER_ONLY = {"lark", "llvmlite"}


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def pip_installs(dockerfile: str) -> list[str]:
    text = (ROOT / dockerfile).read_text().replace("\\\n", " ")  # join continued lines
    return [line.split()[-1] for line in re.findall(r"pip install ([^&\n]*)", text)]


def apt_installs(text: str) -> set[str]:
    packages = set()
    for line in re.findall(r"apt-get install ([^&\n]*)", text):
        packages |= {word for word in line.split() if not word.startswith("-")}
    return packages


def test_loader_dependencies_leave_out_the_compiler():
    assert requirement_names(PYPROJECT["project"]["dependencies"]) == {"msgpack", "click", "cryptography"}
    assert requirement_names(PYPROJECT["project"]["optional-dependencies"]["compiler"]) == COMPILER_ONLY


def test_run_image_installs_the_loader_without_the_compiler_extra():
    assert pip_installs("Dockerfile.run") == ["/src"]
    assert {"python3-bpfcc", "libbpf1", "python3"} <= apt_installs((ROOT / "Dockerfile.run").read_text())


def test_compile_image_installs_the_compiler_extra():
    assert pip_installs("Dockerfile.compile") == ["'/src[compiler]'"]
    assert "USER nobody" in (ROOT / "Dockerfile.compile").read_text()


def test_images_copy_every_package_pyproject_lists():
    packages = {name.split(".")[0] for name in PYPROJECT["tool"]["setuptools"]["packages"]}
    for dockerfile in ("Dockerfile.compile", "Dockerfile.run"):
        text = (ROOT / dockerfile).read_text()
        for package in packages:
            assert f"COPY {package} /src/{package}" in text, (dockerfile, package)


def test_dev_script_installs_what_the_loader_needs_from_debian():
    listed = re.search(r"APT_PACKAGES=\(([^)]*)\)", (ROOT / "dev.sh").read_text()).group(1).split()
    assert {"python3-bpfcc", "libbpf1", "python3-venv", "bpftool"} <= set(listed)
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
