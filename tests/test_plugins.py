"""Plugins (contrastkit.plugins, ``--plugin``): found without letting the current folder shadow installed packages,
recorded in the run folder so that eval and --resume work from anywhere without ``--plugin``, and every fault of a
plugin reported in one line naming the file and line; ``--debug`` / CONTRASTKIT_DEBUG=1 show the traceback of any
command's error.

The subprocess tests start the command line as the ``contrastkit`` console script does: without the current folder
on ``sys.path`` (``python -m`` would put it there itself). The in-process tests load plugins by path, with names of
their own, and remove them again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from contrastkit import plugins
from contrastkit.cli import main
from contrastkit.config import RESUMABLE_CHANGES, TrainConfig
from contrastkit.methods import registry
from contrastkit.methods.base import Batch, BatchSpec, Method, StepOutput, check_step_output
from contrastkit.settings import SettingsError

#: the console script's behaviour: sys.path without the current folder, then contrastkit's main
LAUNCH = [sys.executable, "-c", "import sys; del sys.path[0]; from contrastkit.cli import main; sys.exit(main())"]

#: a method of a few lines: two views, a linear head, the squared distance of the views' projections
TINY_PLUGIN = """\
from torch import nn

from contrastkit.methods import BatchSpec, Method, StepOutput, register_method


class Tiny(Method):
    batch_spec = BatchSpec(views=2)

    def __init__(self, encoder, dim):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(dim, 4)

    def forward(self, batch, group=None):
        a, b = (self.head(self.encoder(v)) for v in batch.views)
        loss = (a - b).square().mean()
        return StepOutput(loss, logs={"loss": loss.detach()})


register_method("%s", lambda ctx, s: Tiny(ctx.encoder, ctx.feature_dim))
"""

#: modules a training of vectors imports after the plugins (the standard library's included: the current folder
#: put first on sys.path shadowed those too); each one here only leaves a marker file
STRAY = ("statistics", "decimal", "fractions", "sympy", "mpmath", "scipy", "sklearn")


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LAUNCH, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _vectors(path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(96, 6)).astype(np.float32), labels=np.arange(96) % 3)
    return path


def _train_args(method: str, data: Path, out: Path | str) -> list[str]:
    return ["--method", method, "--data", str(data), "--epochs", "1", "--batch-size", "32", "--out", str(out),
            "--no-progress", "--device", "cpu"]


@pytest.fixture
def loaded_here(tmp_path, monkeypatch):
    """Run in ``tmp_path``; afterwards the methods, modules and plugin notes this test added are gone."""
    monkeypatch.chdir(tmp_path)
    methods, by_module = dict(registry._REGISTRY), dict(plugins._BY_MODULE)
    yield tmp_path
    registry._REGISTRY.clear()
    registry._REGISTRY.update(methods)
    root = str(tmp_path.resolve())
    for name in [n for n, m in sys.modules.items() if str(getattr(m, "__file__", None) or "").startswith(root)]:
        del sys.modules[name]
    plugins._BY_MODULE.clear()
    plugins._BY_MODULE.update(by_module)


# ---------------------------------------------------------------------------------------------------------
# item 9: nothing from the current folder but the plugin asked for; a record that works from anywhere
# ---------------------------------------------------------------------------------------------------------

def test_a_stray_module_beside_the_user_is_never_imported(tmp_path) -> None:
    """Before, ``--plugin`` put the current folder first on sys.path for the whole command: a ``statistics.py`` or
    ``scipy.py`` next to the user's files ran in place of the real one."""
    for name in STRAY:
        (tmp_path / f"{name}.py").write_text(f"import pathlib\npathlib.Path({str(tmp_path)!r}, "
                                             f"'imported_{name}').write_text('stray')\n")
    (tmp_path / "tiny_plugin.py").write_text(TINY_PLUGIN % "tiny")
    _vectors(tmp_path / "vec.npz")
    done = _cli("train", "--plugin", "tiny_plugin", *_train_args("tiny", tmp_path / "vec.npz", "run"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("imported_*")) == []
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["plugins"]
    assert recorded == [{"module": "tiny_plugin", "path": str((tmp_path / "tiny_plugin.py").resolve())}]


def test_a_plugin_run_resumes_and_evaluates_from_anywhere_and_says_what_to_pass(tmp_path) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    plugin = work / "tiny_plugin.py"
    plugin.write_text(TINY_PLUGIN % "tiny")
    data = _vectors(work / "vec.npz")
    run = work / "run"
    assert _cli("train", "--plugin", "tiny_plugin", *_train_args("tiny", data, run), cwd=work).returncode == 0

    resumed = _cli("train", "--out", str(run), "--resume", "--epochs", "2", cwd=elsewhere)  # no --plugin
    assert resumed.returncode == 0, resumed.stderr
    evaluated = _cli("eval", str(run), "--no-plots", "--no-baselines", "--device", "cpu", cwd=elsewhere)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"note: imported plugin 'tiny_plugin' ({plugin.resolve()}), recorded by {run}" in evaluated.stderr

    moved = work / "moved" / "tiny_plugin.py"
    moved.parent.mkdir()
    plugin.rename(moved)
    refused = _cli("eval", str(run), "--no-plots", "--device", "cpu", cwd=elsewhere)
    assert refused.returncode == 2
    assert _lines(refused.stderr) == [
        f"contrastkit eval: error: {run} was trained with plugin 'tiny_plugin' ({plugin.resolve()}), which cannot be "
        f"imported from here (the file is not there any more): pass --plugin NEW/PATH/tiny_plugin.py (where it is "
        f"now), or --plugin tiny_plugin if it is installed"]

    # where the code lives is not a setting of the run: a resume with the new path is accepted and recorded
    again = _cli("train", "--plugin", str(moved), "--out", str(run), "--resume", "--epochs", "3", cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["plugins"] == [
        {"module": "tiny_plugin", "path": str(moved.resolve())}]
    assert "plugins" in RESUMABLE_CHANGES


def test_a_module_name_not_on_the_path_is_loaded_from_the_current_folder_without_changing_sys_path(
        loaded_here) -> None:
    (loaded_here / "plugin_here_xyz.py").write_text(TINY_PLUGIN % "tiny_here_xyz")
    path_before = list(sys.path)
    record = registry.import_plugins(["plugin_here_xyz"])
    assert record == [{"module": "plugin_here_xyz", "path": str((loaded_here / "plugin_here_xyz.py").resolve())}]
    assert sys.path == path_before
    assert registry.find_method("tiny_here_xyz") is not None


def test_a_py_path_is_loaded_under_its_own_name(loaded_here) -> None:
    folder = loaded_here / "elsewhere"
    folder.mkdir()
    (folder / "plugin_path_xyz.py").write_text(TINY_PLUGIN % "tiny_path_xyz")
    assert plugins.load_plugin(str(folder / "plugin_path_xyz.py")) == {
        "module": "plugin_path_xyz", "path": str((folder / "plugin_path_xyz.py").resolve())}
    assert sys.modules["plugin_path_xyz"].__file__ == str((folder / "plugin_path_xyz.py").resolve())
    with pytest.raises(plugins.PluginError, match=r"^--plugin .*json\.py: a module named 'json' is already "
                                                  r"imported \(from .*\); rename elsewhere/json\.py"):
        (folder / "json.py").write_text("x = 1\n")
        plugins.load_plugin(str(folder / "json.py"))


def test_recorded_plugins_are_checked_records_and_set_from_the_command_line_only(loaded_here, capsys) -> None:
    assert TrainConfig().plugins == []  # a run without plugins; also what a checkpoint of older versions reads as
    assert TrainConfig.from_dict({"plugins": [{"module": "a.b", "path": None}]}).plugins == [
        {"module": "a.b", "path": None}]
    for bad in ("tiny_plugin", [{"module": "x"}], [{"module": "x", "path": "relative/x.py"}], [{"module": "",
                                                                                                  "path": None}]):
        with pytest.raises(SettingsError, match="`plugins`"):
            TrainConfig.from_dict({"plugins": bad})
    assert main(["train", "--set", "plugins=[]", "--data", "digits"]) == 2
    assert _lines(capsys.readouterr().err) == [
        "contrastkit train: error: --set plugins=[]: `plugins` records what --plugin imported; pass --plugin MODULE "
        "(or --plugin FILE.py) instead"]


def test_a_built_in_methods_run_never_imports_what_it_recorded(loaded_here) -> None:
    """A run folder names code to import: it is imported only when the run's method is not known otherwise."""
    marker = loaded_here / "imported"
    (loaded_here / "never_xyz.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n")
    record = [{"module": "never_xyz", "path": str(loaded_here / "never_xyz.py")}]
    assert registry.import_recorded_plugins(record, "simclr", "run") == []
    assert not marker.exists()
    notes: list[str] = []
    assert registry.import_recorded_plugins(record, "method_of_never_xyz", "run", note=notes.append) == record
    assert marker.exists() and notes == ["note: imported plugin 'never_xyz' "
                                         f"({loaded_here / 'never_xyz.py'}), recorded by run for its method "
                                         f"'method_of_never_xyz'"]


# ---------------------------------------------------------------------------------------------------------
# item 10: one line per fault, naming the plugin, the file and line, the problem
# ---------------------------------------------------------------------------------------------------------

FAULTS = {
    "name_error": ("from contrastkit.methods import register_method\n\n\n"
                   "def build(ctx, s):\n    return nn.Identity()\n\n\n"
                   "x = nn.Linear(2, 2)\n",
                   "faulty.py line 8: NameError: name 'nn' is not defined"),
    "value_error_in_the_library": ("from torch import nn\n\nfrom contrastkit.methods import register_method\n\n"
                                   "register_method('simclr', lambda ctx, s: nn.Identity())\n",
                                   "faulty.py line 5: ValueError: register_method: a method named 'simclr' is "
                                   "already registered (replace=True to override it)"),
    "syntax_error": ("import torch\n\n\ndef f(:\n    pass\n", "faulty.py line 4: SyntaxError: invalid syntax"),
    "missing_sibling": ("import helpers_beside_xyz\n",
                        "faulty.py line 1: ModuleNotFoundError: No module named 'helpers_beside_xyz' "
                        "(helpers_beside_xyz beside the plugin is not on the Python path: make the plugin a package, "
                        "or add {folder} to PYTHONPATH)"),
}


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_a_plugin_that_fails_to_import_is_one_line_with_its_file_and_line(case, loaded_here, capsys) -> None:
    source, expected = FAULTS[case]
    folder = loaded_here / case
    folder.mkdir()
    (folder / "faulty.py").write_text(source)
    (folder / "helpers_beside_xyz.py").write_text("")
    assert main(["train", "--plugin", f"{case}/faulty.py", "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert _lines(err) == [f"contrastkit: error: --plugin {case}/faulty.py: {case}/"
                           + expected.format(folder=folder.resolve())]


BUILD_FAULTS = {
    "returns_none": ("from contrastkit.methods import register_method\n\n"
                     "register_method('{name}', lambda ctx, s: None)\n",
                     "build_fault.py line 3: the builder of method '{name}' returned NoneType, not a method (an "
                     "nn.Module, see contrastkit.methods.base); build(ctx, settings) must return the method it builds"),
    "returns_a_plain_module": ("from torch import nn\nfrom contrastkit.methods import register_method\n\n"
                               "register_method('{name}', lambda ctx, s: nn.Linear(2, 2))\n",
                               "build_fault.py line 4: the builder of method '{name}': Linear is not a contrastkit "
                               "method: it lacks ['batch_spec', 'encoder', 'after_step'] (subclass "
                               "contrastkit.methods.Method, or see its docstring)"),
    "raises": ("from contrastkit.methods import register_method\n\n\n"
               "def build(ctx, s):\n    width = ctx.feature_dim\n    return Head(width)\n\n\n"
               "register_method('{name}', build)\n",
               "build_fault.py line 4: the builder of method '{name}' raised: build_fault.py line 6: NameError: "
               "name 'Head' is not defined"),
}


@pytest.mark.parametrize("case", sorted(BUILD_FAULTS))
def test_a_builder_that_fails_is_one_line_with_its_file_and_line(case, loaded_here, capsys) -> None:
    source, expected = BUILD_FAULTS[case]
    name = f"build_{case}_xyz"
    (loaded_here / "build_fault.py").write_text(source.format(name=name))
    data = _vectors(loaded_here / "vec.npz")
    assert main(["train", "--plugin", "./build_fault.py", *_train_args(name, data, "run")]) == 2
    assert _lines(capsys.readouterr().err) == [
        f"contrastkit train: error: --plugin ./build_fault.py: {expected.format(name=name)}"]


STEP_FAULTS = {
    "per_sample_loss": ("loss = z.square().sum(1)", "returned a loss of shape (32,): StepOutput.loss must be a scalar "
                                                    "(0-dim) tensor; reduce it, e.g. with .mean()"),
    "float_loss": ("loss = z.detach().square().mean().tolist()",
                   "returned a loss of type float: StepOutput.loss must be a tensor (a scalar)"),
}

STEP_PLUGIN = """\
from contrastkit.methods import BatchSpec, Method, StepOutput, register_method


class Faulty(Method):
    batch_spec = BatchSpec(views=1)

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, batch, group=None):
        z = self.encoder(batch.views[0])
        {line}
        return StepOutput(loss, logs={{"loss": z.detach().mean()}})


register_method("{name}", lambda ctx, s: Faulty(ctx.encoder))
"""


@pytest.mark.parametrize("case", sorted(STEP_FAULTS))
def test_a_loss_that_is_not_a_scalar_tensor_is_one_line_naming_the_forward(case, loaded_here, capsys) -> None:
    line, expected = STEP_FAULTS[case]
    name, module = f"step_{case}_xyz", f"step_fault_{case}"
    (loaded_here / f"{module}.py").write_text(STEP_PLUGIN.format(line=line, name=name))
    data = _vectors(loaded_here / "vec.npz")
    assert main(["train", "--plugin", f"{module}.py", *_train_args(name, data, "run")]) == 2
    assert _lines(capsys.readouterr().err) == [
        f"contrastkit train: error: {module}.Faulty.forward ({module}.py line 11) {expected}"]


class _Step(Method):
    """A method whose forward returns whatever it was given (for check_step_output)."""

    batch_spec = BatchSpec(views=1)

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(2, 2)

    def forward(self, batch: Batch, group=None) -> StepOutput:
        raise NotImplementedError


def test_check_step_output_names_each_problem() -> None:
    method = _Step()
    w = nn.Parameter(torch.ones(3))
    good = (w * 2).sum()
    here, me = os.path.realpath(os.getcwd()), os.path.realpath(__file__)
    shown = os.path.relpath(me, here) if me.startswith(here + os.sep) else me
    where = f"{__name__}._Step.forward ({shown} line {_Step.forward.__code__.co_firstlineno})"
    check_step_output(StepOutput(good, logs={"loss": good.detach()}), method)  # a scalar with a graph: fine
    cases = [
        ((good, good.detach()), TypeError, "returned tuple; it must return a StepOutput"),
        (StepOutput(w * 2, logs={"loss": good.detach()}), ValueError, "returned a loss of shape (3,)"),
        (StepOutput(good.detach(), logs={"loss": good.detach()}), ValueError, "returned a loss without a graph"),
        (StepOutput(torch.tensor(3), logs={"loss": good.detach()}), ValueError, "returned a loss of dtype torch.int64"),
        (StepOutput(good), ValueError, "returned logs without 'loss' (it has [])"),
        (StepOutput(good, logs={"loss": good.detach(), "acc": w.detach()}), ValueError,
         "returned logs['acc'] of shape (3,)"),
        (StepOutput(good, logs={"loss": 1.0}), ValueError, "returned logs['loss'] of type float"),
    ]
    for output, kind, words in cases:
        with pytest.raises(kind) as caught:
            check_step_output(output, method)
        assert str(caught.value).startswith(f"{where} {words}"), str(caught.value)


# ---------------------------------------------------------------------------------------------------------
# --debug / CONTRASTKIT_DEBUG: the traceback of any command's error
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["before", "after", "environment"])
def test_debug_shows_the_traceback_of_any_error(how, loaded_here, capsys, monkeypatch) -> None:
    args = ["train", "--data", "no_such_data_xyz", "--out", "run"]
    monkeypatch.delenv("CONTRASTKIT_DEBUG", raising=False)
    assert main(args) == 2
    plain = capsys.readouterr().err
    assert len(_lines(plain)) == 1 and "Traceback" not in plain
    if how == "environment":
        monkeypatch.setenv("CONTRASTKIT_DEBUG", "1")
    argv = {"before": ["--debug", *args], "after": [*args, "--debug"], "environment": args}[how]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and 'in load_dataset' in err
    assert _lines(err)[-1] == _lines(plain)[0]  # the same one-line message, last


def test_debug_shows_where_a_plugin_failed_and_a_module_name_is_named_as_given(tmp_path) -> None:
    (tmp_path / "byol_example.py").write_text(FAULTS["name_error"][0])
    plain = _cli("train", "--plugin", "byol_example", "--method", "byol", cwd=tmp_path)
    assert plain.returncode == 2
    assert _lines(plain.stderr) == ["contrastkit: error: --plugin byol_example: byol_example.py line 8: NameError: "
                                    "name 'nn' is not defined"]
    debug = _cli("--debug", "train", "--plugin", "byol_example", "--method", "byol", cwd=tmp_path)
    assert debug.returncode == 2
    assert f'File "{(tmp_path / "byol_example.py").resolve()}", line 8, in <module>' in debug.stderr
    assert _lines(debug.stderr)[-1] == _lines(plain.stderr)[0]
