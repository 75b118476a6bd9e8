"""Shared plumbing of the absl entry points: --help, one-line errors, quiet logs."""

import sys

from zoo import quiet

# Errors the user can fix: printed as one line, exit status 2, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, PermissionError)
HELP_ARGS = ("-h", "--help", "-?", "--helpshort")


def quiet_tensorflow():
    """Imports TensorFlow now, without its C++ start-up chatter (zoo.quiet:
    shown only if the import fails; TF_CPP_MIN_LOG_LEVEL=0, 1 or 2 in the
    environment keeps every line)."""
    from zoo import quiet

    quiet.install()
    import tensorflow  # noqa: F401


def describe_os_error(error):
    """Returns one line for an OSError the user can act on: a full disk, a
    file over a size limit, a missing or unwritable path."""
    import errno

    where = f" ({error.filename})" if getattr(error, "filename", None) else ""
    if error.errno == errno.ENOSPC:
        return (
            f"no space left on the device{where}; free some space or point the "
            "output (--leaderboard, --cache_dir, --out) at another disk, then rerun"
        )
    if error.errno == errno.EFBIG:
        return (
            f"a file grew past the file-size limit{where} (ulimit -f, or "
            "--sandbox_file_gb in a sandboxed run)"
        )
    if error.errno == errno.EROFS:
        return f"the file system is read-only{where}; write somewhere else"
    reason = error.strerror or str(error) or type(error).__name__
    return f"{reason}{where}"


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
    from absl import app, flags, logging

    module = sys.modules[main.__module__]
    if any(arg in HELP_ARGS for arg in sys.argv[1:]):
        print_help(module)
        sys.exit(0)

    def parse(argv):  # absl's own report is two lines and exit status 1
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            message = " ".join(str(e).split())
            print(f"error: {message} (see --help)", file=sys.stderr)
            sys.exit(2)

    def guarded(argv):
        # TensorFlow loads only when the command needs it, silently
        # (zoo.quiet): arguments checked before that fail at once.
        quiet.install()
        if not flags.FLAGS["verbosity"].present:  # TF's INFO lines drown progress
            logging.set_verbosity(logging.WARNING)
        try:
            return main(argv)
        except USER_ERRORS as e:
            message = " ".join(str(e).split()) or type(e).__name__
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        except OSError as e:
            print(f"error: {describe_os_error(e)}", file=sys.stderr)
            sys.exit(2)
        except Exception as e:  # noqa: BLE001 - TensorFlow's errors, one line
            tf = sys.modules.get("tensorflow")
            if tf is None or not isinstance(e, tf.errors.OpError):
                raise
            lines = (e.message or "").strip().splitlines() or [""]
            print(f"error: TensorFlow: {type(e).__name__}: {lines[0]}", file=sys.stderr)
            sys.exit(2)

    app.run(guarded, flags_parser=parse)
