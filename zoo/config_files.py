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


def config_module(path):
    """Returns the Python module of the config file at `path`, executed."""
    import importlib.util

    name = "config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unknown_config(name, folder, what="config"):
    """Returns the one line for a config name that is not in `folder`."""
    from zoo.registry import did_you_mean

    names = config_names(folder)
    return (
        f"unknown {what} '{name}'; {did_you_mean(name, names)}use one of "
        f"{', '.join(names)} or a path to a .py file defining get_config()"
    )


def check_config_name(name, folder, what="config", error=ValueError):
    """Raises `error` (one line) unless `name` is a config of `folder` or an
    existing .py file; imports nothing."""
    if name.endswith(".py"):
        if not os.path.isfile(name):
            raise error(f"{what} file {name} not found")
    elif name not in config_names(folder):
        raise error(unknown_config(name, folder, what))


def load_config_file(
    name_or_path, folder, config_type, what="config", error=ValueError
):
    """Returns `get_config()` of the config named `name_or_path` in `folder`
    or of a .py file: the one config-file loader (training, benchmark,
    analysis and study configs). Raises `error` with one line for an unknown
    name, a missing file or a get_config() of another type than
    `config_type`."""
    if name_or_path.endswith(".py"):
        path = name_or_path
        if not os.path.isfile(path):
            raise error(f"{what} file {path} not found")
    elif name_or_path in config_names(folder):
        path = os.path.join(folder, f"{name_or_path}.py")
    else:
        raise error(unknown_config(name_or_path, folder, what))
    config = config_module(path).get_config()
    if not isinstance(config, config_type):
        raise error(
            f"{name_or_path}: get_config() must return a {config_type.__name__}"
        )
    return config
