"""A process that does an exact, known number of read() calls, when told to.

    python3 workload.py N

Opens /dev/zero, prints 'ready' and waits for SIGUSR1 without making any read() call; then reads
1 byte N times (one read() each) and exits. Tests start it first, so that its pid can go into the
program, and release it once the probes are attached.
"""

import os
import signal
import sys


def main() -> None:
    reads = int(sys.argv[1])
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    fd = os.open("/dev/zero", os.O_RDONLY)
    os.write(1, b"ready\n")
    signal.sigwait({signal.SIGUSR1})
    for _ in range(reads):
        os.read(fd, 1)
    os.close(fd)


if __name__ == "__main__":
    main()
