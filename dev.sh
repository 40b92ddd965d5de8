#!/usr/bin/env bash
# Set up this checkout on Debian bookworm (as root) and run the demo or the test suite.
#   ./dev.sh demo    compile examples/read_tp.bt, run it against a read() workload, print the histogram
#   ./dev.sh test    run the whole test suite (loads BPF for real: needs root)
# Both install what they need first, idempotently: Debian packages, then .venv with bpftc and bpfrun.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(python3 python3-venv python3-pip python3-bpfcc python3-cryptography libbpf1 bpftool gcc libc6-dev)

install_packages() {
  local missing=()
  for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "dev.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

install_venv() {
  # Debian's python: bcc's module (python3-bpfcc) only imports there.
  [ -x .venv/bin/python ] || /usr/bin/python3 -m venv --system-site-packages .venv
  # The stamp names how it was installed, so that a change of either reinstalls.
  local stamp=.venv/.installed-compat-$(sha256sum pyproject.toml | cut -c1-16)
  if [ ! -e "$stamp" ] || [ ! -x .venv/bin/bpftc ]; then
    echo "dev.sh: installing bpftc and bpfrun into .venv" >&2
    # A "compat" editable install is one line in a .pth file: the default one installs an import hook
    # that imports pathlib, re and urllib at every start (15 ms of each bpftc and bpfrun run).
    .venv/bin/pip install -q --disable-pip-version-check -e '.[compiler,test]' --config-settings editable_mode=compat
    rm -f .venv/.installed-* && touch "$stamp"
  fi
}

demo() {
  local bundle=/tmp/read_tp.bpfb
  local bpftc="$PWD/.venv/bin/bpftc"
  # The compiler needs no privileges: run it as user nobody when nobody can run it here (a checkout
  # in root's home directory, mode 0700, is out of its reach). Try what will really run.
  if setpriv --reuid=65534 --regid=65534 --clear-groups -- "$bpftc" --help >/dev/null 2>&1; then
    echo "+ bpftc - -o - < examples/read_tp.bt > $bundle   (as user nobody)"
    setpriv --reuid=65534 --regid=65534 --clear-groups -- "$bpftc" - -o - < examples/read_tp.bt > "$bundle"
  else
    echo "dev.sh: user nobody cannot run $bpftc (the checkout is not readable to it): compiling as $(id -un)"
    echo "+ bpftc examples/read_tp.bt -o $bundle"
    "$bpftc" examples/read_tp.bt -o "$bundle"
  fi
  echo "+ bpfrun $bundle   (stopped with SIGINT after 3 s; meanwhile dd does 20000 reads)"
  .venv/bin/bpfrun "$bundle" &
  local runner=$!
  sleep 1
  dd if=/dev/zero of=/dev/null bs=512 count=20000 status=none
  sleep 2
  kill -INT "$runner"
  wait "$runner"
}

run_tests() {
  set +e
  local status
  if [ $# -gt 0 ]; then
    .venv/bin/python -m pytest -q "$@"
    status=$?
  else
    # The runtime cases are independent (each traces its own workload): 4 at a time. The other
    # tests look at every BPF program on the machine, so they run alone, afterwards.
    # A hung test must fail the run, not stall it: pytest is interrupted (it then prints what it
    # has) after 25 minutes, and each test's stack is dumped after 10 (faulthandler_timeout).
    timeout -s INT -k 60 1500 .venv/bin/python -m pytest -q -n 4 tests/runtime
    status=$?
    timeout -s INT -k 60 1500 .venv/bin/python -m pytest -q --ignore=tests/runtime
    local rest=$?
    [ $status -eq 0 ] && status=$rest
  fi
  set -e
  if [ $status -eq 5 ]; then
    echo "dev.sh: pytest collected no tests: the suite is broken" >&2
  fi
  return $status
}

main() {
  [ "$(id -u)" = 0 ] || { echo "dev.sh: run as root (it installs packages and loads BPF)" >&2; exit 1; }
  local command=${1:-}
  [ $# -gt 0 ] && shift
  case "$command" in
    demo) install_packages; install_venv; demo ;;
    test) install_packages; install_venv; run_tests "$@" ;;
    *) echo "usage: ./dev.sh demo | ./dev.sh test [pytest arguments]" >&2; exit 2 ;;
  esac
}

main "$@"
