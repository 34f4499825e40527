"""The one exception type users see.

Stage code raises CaffepipeError with a message that says what is wrong and how to fix it; the CLI
boundary (cli.py) prints it as one line and exits non-zero. Anything else is a bug and keeps its traceback.
"""


class CaffepipeError(Exception):
    """A problem the user can fix: bad input, a missing file, a failed download, a broken set-up."""
