"""bpfrun -c CMD: the command to trace, started before the probes are attached and released
once they are, so that it runs from its first instruction with every probe in place.

The child waits in a pipe read between fork and exec (a plain fork: subprocess.Popen would wait
for the exec, which waits for us); `release()` lets it exec; `finished()` tells the run loop when
to stop, as bpftrace stops when the command exits.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal

from bpfrun.errors import UserError


class Command:
    def __init__(self, command_line: str) -> None:
        arguments = shlex.split(command_line)
        if not arguments:
            raise UserError("-c needs a command")
        program = shutil.which(arguments[0])
        if program is None:
            raise UserError(f"cannot run {arguments[0]!r}: no such command")
        read_end, self._write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: wait for the probes, then become the command
            try:
                os.close(self._write)
                os.read(read_end, 1)
                os.execv(program, arguments)
            finally:
                os._exit(127)
        os.close(read_end)
        self._status: int | None = None

    def release(self) -> None:
        os.write(self._write, b"x")
        os.close(self._write)
        self._write = -1

    def finished(self) -> bool:
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status = status
        return self._status is not None

    def stop(self) -> None:
        """When bpfrun ends first (Ctrl-C, exit()): the command does not outlive the tracing."""
        if self._write >= 0:
            os.close(self._write)  # a child still waiting reads end-of-file and exits with 127
        if not self.finished():
            os.kill(self.pid, signal.SIGTERM)
            os.waitpid(self.pid, 0)
