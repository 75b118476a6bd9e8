"""What every kind of config file shares (training configs in zoo/configs,
benchmark configs, analysis configs, study matrices): how a folder's config
names are listed and how an override value is read."""

import json
import os

# Files of a config folder that define the config type, not a config.
NOT_CONFIGS = ("config",)


def config_names(folder):
    """Returns the names of the config files (NAME.py, not _*.py nor
    NOT_CONFIGS) in `folder`."""
    names = [f[:-3] for f in os.listdir(folder) if f.endswith(".py")]
    return sorted(n for n in names if not n.startswith("_") and n not in NOT_CONFIGS)


def parse_value(text):
    """Returns JSON-decoded `text` (numbers, true/false, null, lists), or
    `text` itself when it is not JSON: the one override syntax's values."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text
