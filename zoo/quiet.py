"""Keeps TensorFlow's C++ start-up chatter off the terminal, for the CLIs and
for Python users of the packages alike, without importing TensorFlow early.

`install()` (called by each package's __init__) sets TF_CPP_MIN_LOG_LEVEL=3
unless the user set it, and adds an import hook: whenever TensorFlow is
first imported, by whatever module, file descriptor 2 points at a temporary
file while it loads (its "All log messages before absl::InitializeLog()",
oneDNN and cudart lines come before the log level is read). What it wrote
is shown only if the import fails. TF_CPP_MIN_LOG_LEVEL=0, 1 or 2 in the
environment keeps every line.
"""

import importlib.abc
import importlib.machinery
import os
import sys
import tempfile


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                self.loader.exec_module(module)
            except BaseException:
                os.dup2(saved, 2)
                sink.seek(0)
                sys.stderr.write(sink.read().decode("utf-8", "replace"))
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of the top-level `tensorflow` package."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


def install():
    """Sets the quiet log level default and the import hook (once)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
