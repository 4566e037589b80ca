"""Plugins: the modules ``--plugin`` names, imported without letting the current folder shadow anything,
recorded in the run folder, and their faults reported in one line.

How ``--plugin X`` is found (and what it never does):

* ``X`` a dotted module name (``byol_example``, ``mypkg.methods``): imported the normal way, from the Python
  path as Python set it up. Only when no such top-level module exists there is the current folder searched, for
  exactly that module (``X.py``, or the package ``X/``), which is then loaded from its file. ``sys.path`` is never
  changed: a stray ``scipy.py`` beside the user is not imported in place of the installed scipy (before, the
  current folder went first on ``sys.path`` for the whole command).
* ``X`` a path (``byol_example.py``, ``../plugins/vicreg.py``, a package folder): loaded from that file under its
  own name (the file's stem, or the folder's name). Its folder is not put on the Python path either; a plugin
  spread over several modules is a package (give its folder, or make it importable).

What a run records (``TrainConfig.plugins``, in ``config.yaml`` and the checkpoint): one ``{module, path}`` per
plugin, ``path`` the absolute file (or package folder) it was loaded from, or ``null`` for a module imported by
name from the Python path. ``eval``, ``plot`` and ``train --resume`` of the run import what it recorded when its
method is not known otherwise (a built-in method's run never imports anything), so they work from any folder
without ``--plugin``; when a recorded plugin cannot be imported, one line says what to pass.

A fault in a plugin (an import that raises, a syntax error, a builder that raises or returns something else than
a method) is a :class:`PluginError`: one line naming the plugin, the file and line, and the problem, e.g.
``--plugin byol_example: byol_example.py line 12: NameError: name 'nn' is not defined``
(``contrastkit --debug ...`` shows the whole traceback).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from contrastkit.settings import SettingsError

__all__ = ["PluginError", "check_records", "code_location", "describe", "fault_error", "import_records",
           "load_plugin", "load_plugins", "plugin_of", "shown_path"]

#: one record per plugin: {"module": dotted name, "path": absolute file / package folder it came from, or None}
Record = dict[str, Any]

#: the plugins loaded in this process: top-level module name -> the plugin in words (``--plugin byol_example``),
#: for the messages about their builders
_BY_MODULE: dict[str, str] = {}


class PluginError(ValueError):
    """A plugin could not be imported or built; the message is one line (plugin, file and line, problem)."""


# ---------------------------------------------------------------------------------------------------------
# where things are, in words
# ---------------------------------------------------------------------------------------------------------

def shown_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the current folder when it lies inside it (``byol_example.py``), else absolute."""
    full = os.path.realpath(path)
    here = os.path.realpath(os.getcwd())
    if full == here or full.startswith(here + os.sep):
        return os.path.relpath(full, here)
    return full


def code_location(func: object) -> str | None:
    """``"FILE line N"`` of the definition of a function (a lambda: its line; a class: its ``__init__``; another
    callable object: its ``__call__``), or None when it has no Python code."""
    code = getattr(func, "__code__", None)
    if code is None:
        method = func.__init__ if isinstance(func, type) else type(func).__dict__.get("__call__")
        code = getattr(method, "__code__", None)
    if code is None:
        return None
    return f"{shown_path(code.co_filename)} line {code.co_firstlineno}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _problem(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg}"
    text = _one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _inside(filename: str, roots: Iterable[str]) -> bool:
    full = os.path.realpath(filename)
    return any(full == root or full.startswith(root + os.sep) for root in roots)


def _fault_location(exc: BaseException, roots: list[str]) -> str | None:
    """``"FILE line N"`` of the fault: a syntax error's own position, else the innermost traceback frame in the
    plugin's file (or package folder) -- the plugin's line that called whatever raised."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{shown_path(exc.filename)} line {exc.lineno}"
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if _inside(frame.filename, roots):
            return f"{shown_path(frame.filename)} line {frame.lineno}"
    return None


def fault_error(label: str, exc: BaseException, roots: list[str], folder: str | None = None) -> PluginError:
    """The one-line error for ``exc`` raised while importing (or building) the plugin ``label``: the innermost line
    of ``roots`` (files or folders) in its traceback, and the problem; ``folder``: where the plugin file lies (a
    module missing there gets a hint)."""
    where = _fault_location(exc, roots)
    message = f"{label}: {where + ': ' if where else ''}{_problem(exc)}"
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if missing and folder is not None:
        top = missing.split(".")[0]
        if (Path(folder) / f"{top}.py").is_file() or (Path(folder) / top / "__init__.py").is_file():
            message += (f" ({top} beside the plugin is not on the Python path: make the plugin a package, or add "
                        f"{folder} to PYTHONPATH)")
    return PluginError(message)


# ---------------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------------

def _is_module_name(text: str) -> bool:
    return not text.endswith(".py") and all(part.isidentifier() for part in text.split("."))


def _location_of(spec: importlib.machinery.ModuleSpec | None) -> str | None:
    """The file of a module spec, or the folder of a package's."""
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    origin = os.path.realpath(spec.origin)
    if spec.submodule_search_locations is not None and os.path.basename(origin) == "__init__.py":
        return os.path.dirname(origin)
    return origin


def _roots(location: str | None) -> list[str]:
    return [os.path.realpath(location)] if location else []


def _load_location(label: str, location: Path, name: str) -> ModuleType:
    """Load the module file (or package folder) ``location`` as ``name``, without touching ``sys.path``."""
    present = sys.modules.get(name)
    if present is not None:
        if _location_of(getattr(present, "__spec__", None)) == os.path.realpath(location):
            return present  # this very file, imported already
        where = getattr(present, "__file__", None) or "built in"
        raise PluginError(f"{label}: a module named {name!r} is already imported (from {where}); rename "
                          f"{shown_path(location)} so its name is its own")
    if location.is_dir():
        init = location / "__init__.py"
        if not init.is_file():
            raise PluginError(f"{label}: {shown_path(location)} is a folder without __init__.py; give a .py file or "
                              f"a package folder")
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(location)])
    else:
        spec = importlib.util.spec_from_file_location(name, location)
    if spec is None or spec.loader is None:
        raise PluginError(f"{label}: cannot load {shown_path(location)} as a Python module (a .py file or a "
                          f"package folder is expected)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise fault_error(label, exc, _roots(str(location)), str(location.parent)) from exc
    return module


def _import_by_name(label: str, name: str, location: str | None) -> ModuleType:
    """``import name`` the normal way; a fault inside the module is one line."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise PluginError(f"{label}: cannot import it ({exc}); give a module importable from the Python path, "
                              f"a module in the current folder, or the path of a .py file") from exc
        raise fault_error(label, exc, _roots(location)) from exc
    except (Exception, SystemExit) as exc:
        raise fault_error(label, exc, _roots(location)) from exc


def _top_level_spec(top: str) -> importlib.machinery.ModuleSpec | None:
    if top in sys.modules:
        return getattr(sys.modules[top], "__spec__", None)
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None


def _load_by_name(name: str, label: str) -> Record:
    """A module name: the Python path first, then exactly that module in the current folder (loaded by file)."""
    top, _, _ = name.partition(".")
    here = Path.cwd()
    spec = _top_level_spec(top)
    if spec is not None or top in sys.modules:
        location = _location_of(spec)
        _import_by_name(label, name, location)
        # found through the current folder (``python -m`` puts it on the path): elsewhere only its path finds it
        local = location is not None and os.path.dirname(location) == os.path.realpath(here)
        return {"module": name, "path": location if local else None}
    candidates = [here / top, here / f"{top}.py"]  # a package first, as Python's own finder does
    location = next((c for c in candidates if (c / "__init__.py").is_file() or c.is_file()), None)
    if location is None:
        raise PluginError(f"{label}: cannot import it (no module named {top!r} on the Python path, and no {top}.py "
                          f"or package {top}/ in the current folder {here}); give a module name or the path of a "
                          f".py file")
    _load_location(label, location.resolve(), top)
    if name != top:
        _import_by_name(label, name, str(location.resolve()))
    return {"module": name, "path": str(location.resolve())}


def _module_name_of_path(label: str, path: Path) -> str:
    name = path.name if path.is_dir() else path.stem
    if "." in name:
        raise PluginError(f"{label}: {path.name} would be imported as {name!r}, a dotted (sub-module) name; rename "
                          f"it without the inner dot")
    return name


def load_plugin(given: str) -> Record:
    """Import the plugin ``given`` (``--plugin``: a module name, or the path of a ``.py`` file or package folder;
    see the module docstring); returns its record."""
    label = f"--plugin {given}"
    if not isinstance(given, str) or not given.strip():
        raise PluginError(f"--plugin expects a module name or the path of a .py file, got {given!r}")
    if _is_module_name(given):
        record = _load_by_name(given, label)
    else:
        path = Path(given).expanduser()
        if not path.exists():
            raise PluginError(f"{label}: no such file or folder ({path.resolve()}); give the path of a .py file, "
                              f"a package folder, or a module name")
        path = path.resolve()
        name = _module_name_of_path(label, path)
        _load_location(label, path, name)
        record = {"module": name, "path": str(path)}
    _BY_MODULE[record["module"].partition(".")[0]] = label
    return record


def load_plugins(given: Iterable[str]) -> list[Record]:
    """:func:`load_plugin` of each, in order; the records."""
    return [load_plugin(item) for item in given]


def plugin_of(obj: object) -> str | None:
    """The plugin that defined ``obj`` (a builder, a class) in words (``--plugin byol_example``), or None when no
    plugin loaded here did (a built-in method, or one registered by a module imported some other way)."""
    module = getattr(obj, "__module__", None) or ""
    return _BY_MODULE.get(module.partition(".")[0])


# ---------------------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------------------

def check_records(value: object, where: str = "settings") -> list[Record]:
    """``value`` as a list of plugin records, or a SettingsError naming what is wrong (a record is what
    ``--plugin`` writes: ``{module: NAME, path: ABSOLUTE PATH or null}``)."""
    expected = "a list of {module: NAME, path: ABSOLUTE PATH or null} records (what --plugin records)"
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise SettingsError(f"{where}: `plugins` must be {expected}, got {value!r}")
    records = []
    for item in value:
        if not isinstance(item, Mapping) or set(item) != {"module", "path"}:
            raise SettingsError(f"{where}: `plugins` must be {expected}, got the entry {item!r}")
        module, path = item["module"], item["path"]
        if not isinstance(module, str) or not all(part for part in module.split(".")):
            raise SettingsError(f"{where}: `plugins`: `module` must be a module name, got {module!r}")
        if path is not None and (not isinstance(path, str) or not os.path.isabs(path)):
            raise SettingsError(f"{where}: `plugins`: `path` must be an absolute path or null, got {path!r}")
        records.append({"module": module, "path": path})
    return records


def describe(record: Mapping[str, Any]) -> str:
    """``'byol_example' (/abs/byol_example.py)``, or ``'mypkg.methods'`` for a module imported by name."""
    return f"{record['module']!r}" + (f" ({record['path']})" if record.get("path") else "")


def _import_record(record: Record, run: str) -> None:
    """Import one recorded plugin: from its recorded path when that is still there, else by name from the Python
    path; neither: a PluginError that says what to pass."""
    module, path = record["module"], record["path"]
    top = module.partition(".")[0]
    label = f"plugin {describe(record)} recorded by {run}"
    if path is not None and os.path.exists(path):  # path: where the top-level module (file or package) is
        _load_location(label, Path(path), top)
        if module != top:
            _import_by_name(label, module, path)
    else:
        spec = _top_level_spec(top)
        if spec is None:
            if path is not None:
                reason = "the file is not there any more"
                hint = (f"pass --plugin NEW/PATH/{os.path.basename(path)} (where it is now), or --plugin {module} "
                        f"if it is installed")
            else:
                reason = f"no module named {top!r} on the Python path"
                hint = (f"make {module!r} importable (install it, or add its folder to PYTHONPATH), or pass --plugin "
                        f"with the path of its .py file")
            raise PluginError(f"{run} was trained with plugin {describe(record)}, which cannot be imported from "
                              f"here ({reason}): {hint}")
        _import_by_name(label, module, _location_of(spec))
    _BY_MODULE[top] = label


def import_records(records: Iterable[Mapping[str, Any]], method: str, run: str | os.PathLike[str],
                   note: Callable[[str], None] | None = None) -> list[Record]:
    """Import the plugins a run recorded for its ``method`` (checked records); returns them. ``note`` (default: a
    line on stderr) is told of each, so that a run folder never runs code unseen. Whether they are needed (the
    method is not registered otherwise) is the caller's question:
    :func:`contrastkit.methods.registry.import_recorded_plugins` asks it."""
    records = check_records(list(records), where=str(run))
    say = note or (lambda text: print(text, file=sys.stderr))
    for record in records:
        _import_record(record, str(run))
        say(f"note: imported plugin {describe(record)}, recorded by {run} for its method {method!r}")
    return records
