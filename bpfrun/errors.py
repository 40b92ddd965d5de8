"""The one error type of bpfrun's steps.

`UserError` is a problem the user can act on (a bad bundle, a missing tracepoint, a program the
verifier rejects). Its message is one line; __main__ prints it as `bpfrun: ERROR: <message>` and
exits 1. Anything else that escapes a step is a bug: `BUG: ...`, exit 2.
"""


class UserError(Exception):
    """One line for the user, without the `bpfrun: ERROR: ` prefix."""
