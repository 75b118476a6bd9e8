"""Runs many entry-point invocations fast, for tests/test_bad_input.py.

One fresh Python imports TensorFlow once (no op runs), then runs each case
in a forked child exactly as its console script would (`<module>.run()`
with sys.argv set), in the case's own working directory and environment,
with file descriptors 1 and 2 captured. Reads a JSON list of cases
[{"module", "args", "cwd", "env"}] on stdin; writes a JSON list of
{"status", "stdout", "stderr"} on stdout.
"""

import importlib
import json
import os
import sys
import tempfile


def run_case(case):
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.chdir(case["cwd"])
            os.environ.update(case.get("env", {}))
            tempfile.tempdir = None
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.argv = [case["module"], *case["args"]]
            importlib.import_module(case["module"]).run()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    out.seek(0)
    err.seek(0)
    return {
        "status": os.waitstatus_to_exitcode(status),
        "stdout": out.read().decode("utf-8", "replace"),
        "stderr": err.read().decode("utf-8", "replace"),
    }


def main():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from zoo.cli import quiet_tensorflow

    quiet_tensorflow()
    cases = json.load(sys.stdin)
    results = [run_case(case) for case in cases]
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main()
