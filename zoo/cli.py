"""Shared plumbing of the absl entry points: one-line errors, quiet TF logs."""

import os
import sys

# Errors the user can fix: printed as one line, exit status 2, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, PermissionError)


def quiet_tensorflow():
    """Hides TensorFlow's C++ start-up chatter unless the user asked for it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_main(main):
    """Runs an absl `main`, turning user errors into `error: ...` and exit 2."""
    quiet_tensorflow()
    from absl import app

    def guarded(argv):
        try:
            return main(argv)
        except USER_ERRORS as e:
            message = " ".join(str(e).split()) or type(e).__name__
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    app.run(guarded)
