"""A tiny name -> factory registry, one per extension point (timm style)."""

import difflib
import fnmatch


class RegistryError(ValueError):
    """Raised for an unknown or duplicate registry name."""


class Registry:
    """Maps names to factories; filled by the `register` decorator.

    Args:
      kind: what the registry holds, used in error messages ("objective").
    """

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name):
        """Returns a decorator that registers its argument under `name`."""

        def decorator(factory):
            if name in self._entries:
                raise RegistryError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = factory
            return factory

        return decorator

    def get(self, name):
        """Returns the factory registered as `name`, or raises RegistryError."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise RegistryError(
                f"unknown {self.kind} '{name}'; {did_you_mean(name, self._entries)}"
                f"choose one of: {known}"
            ) from None

    def create(self, name, **kwargs):
        """Builds the entry `name` with keyword arguments."""
        return self.get(name)(**kwargs)

    def names(self, pattern="*"):
        """Returns the sorted registered names matching a glob `pattern`."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name):
        return name in self._entries


def did_you_mean(name, choices):
    """Returns "did you mean X? " for the closest of `choices` to `name`
    (difflib's ratio >= 0.6), or "" when none is close."""
    close = difflib.get_close_matches(str(name), sorted(choices), n=2, cutoff=0.6)
    return f"did you mean {' or '.join(close)}? " if close else ""
