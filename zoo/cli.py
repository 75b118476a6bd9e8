"""Shared plumbing of the absl entry points: --help, one-line errors, quiet logs."""

import os
import sys

# Errors the user can fix: printed as one line, exit status 2, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, PermissionError)
HELP_ARGS = ("-h", "--help", "-?", "--helpshort")


def quiet_tensorflow():
    """Hides TensorFlow's C++ start-up chatter unless the user asked for it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def print_help(module):
    """Prints the entry point's docstring and its own flags."""
    from absl import flags

    print((module.__doc__ or "").strip())
    print("\nFlags:")
    print(flags.FLAGS.module_help(module))
    print("\nTry --helpfull to list every flag, absl's included.")


def run_main(main):
    """Runs an absl `main`: --help exits 0 with the entry point's own flags,
    user errors become `error: ...` on one line and exit status 2."""
    quiet_tensorflow()
    from absl import app, flags, logging

    module = sys.modules[main.__module__]
    if any(arg in HELP_ARGS for arg in sys.argv[1:]):
        print_help(module)
        sys.exit(0)

    def guarded(argv):
        if not flags.FLAGS["verbosity"].present:  # TF's INFO lines drown progress
            logging.set_verbosity(logging.WARNING)
        try:
            return main(argv)
        except USER_ERRORS as e:
            message = " ".join(str(e).split()) or type(e).__name__
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    app.run(guarded)
