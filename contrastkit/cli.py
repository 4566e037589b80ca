"""Command line: ``contrastkit train | eval | plot | search | demo | mi-bench`` (``--help`` on each).

Examples::

    contrastkit train --method simclr --data mnist5k --epochs 100 --out runs/simclr
    contrastkit train --config my.yaml --lr 0.001            # YAML settings, command line wins
    contrastkit train --method simclr --negatives queue       # SimCLR with a queue of negatives
    contrastkit train --method moco --help                    # MoCo's settings and defaults only
    contrastkit train --out runs/simclr --resume              # continue after a crash or a stop
    contrastkit train --out runs/simclr --resume --epochs 400 # ... and extend it
    contrastkit eval runs/simclr                              # writes runs/simclr/metrics.json
    contrastkit plot runs/simclr                              # t-SNE map and training curves
    contrastkit search runs/clip --query "seven"              # a two-tower run's held-out items nearest to text
    contrastkit demo                                          # the README's main job
    contrastkit mi-bench --json mi.json --png mi.png          # MI estimators on correlated Gaussians

Settings come from (later wins) the method's defaults, ``--config FILE.yaml``, flags and ``--set KEY=VALUE``.
Every value is checked before anything is written; an error names the setting, where it came from and what
is accepted, and a setting that the chosen parts would ignore is an error too (e.g. CPC's --channels with another
--encoder), never dropped. A folder that holds a run is never reused silently: ``--resume`` continues it (with its saved
settings; only those of ``contrastkit.config.RESUMABLE_CHANGES`` may change: epochs, max_minutes, log_every,
checkpoint_every, keep_checkpoints, progress, device, num_threads, stream, workers, plugins), ``--overwrite``
replaces it; one training at a time holds a folder (``run.lock``). Ctrl-C stops after the current step with a
checkpoint. ``--debug`` (or ``CONTRASTKIT_DEBUG=1``) shows the traceback of an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import yaml

__all__ = ["build_parser", "main"]

#: exit status of a run stopped by Ctrl-C / SIGTERM (after its checkpoint was saved), as shells report SIGINT
EXIT_INTERRUPTED = 130
#: the environment variable that does what --debug does: full tracebacks of errors, for any command
DEBUG_VARIABLE = "CONTRASTKIT_DEBUG"


def _method_fields() -> set[str]:
    from contrastkit.methods.registry import methods_by_settings

    return {f.name for cls in methods_by_settings() for f in dataclasses.fields(cls)}


def _shown(value: Any) -> str:
    """A default as a YAML value reads: ``true``, ``0.5``, ``semi-hard``."""
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)


def _method_help() -> str:
    """``--method``'s help: the registered methods (a plugin's too), from the registry."""
    from contrastkit.methods.registry import available_methods

    return (f"the method: one of {', '.join(available_methods())} (the registered methods; a method of your own "
            f"with --plugin MODULE); `train --method NAME --help` shows only that method's settings")


def _data_help() -> str:
    """``--data``'s help: the built-in data sets by name, from the data registries."""
    from contrastkit.run import BUILTIN_DATA

    return (f"a built-in data set ({', '.join(BUILTIN_DATA)}), an image folder (one sub-folder per class), a folder "
            f"of IDX files (train-images-idx3-ubyte ...), a folder of speakers' WAV files, or a .npy / .npz file")


def _settings_defaults(cls: type, methods: list[str]) -> dict[str, str]:
    """The default of each field of the settings class ``cls`` for ``methods`` (their presets over the class's
    defaults), in words; a field whose methods differ lists each (``simclr 0.5, moco 0.2``); None is left out."""
    from contrastkit.methods.registry import get_method

    shown: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        values = {name: get_method(name).presets.get(f.name, f.default) for name in methods}
        if f.default is dataclasses.MISSING or any(v is None for v in values.values()):
            continue
        distinct = {_shown(v) for v in values.values()}
        shown[f.name] = distinct.pop() if len(distinct) == 1 else ", ".join(f"{n} {_shown(v)}"
                                                                             for n, v in values.items())
    return shown


def _add_train_args(p: argparse.ArgumentParser, help_method: str | None = None) -> None:
    """The flags of ``train``: the training settings, then the settings of each registered method in a group of its
    own (``help_method``: only that method's group, and its training defaults shown)."""
    from contrastkit.config import TrainConfig
    from contrastkit.methods.registry import get_method, methods_by_settings
    from contrastkit.settings import add_flags

    p.add_argument("--config", type=Path, metavar="FILE.yaml",
                   help="YAML file of settings (flags override it); method settings under `method_options:`")
    _add_plugin_arg(p)
    group = p.add_argument_group("training settings (YAML keys of the same name)")
    defaults = {}
    if help_method is not None:
        entry = get_method(help_method)
        defaults = {k: f"{_shown(v)} for {help_method}"
                    for k, v in {**entry.training_defaults, "out": f"runs/{help_method}"}.items()}
    add_flags(group, TrainConfig, skip=("method_options",), helps={"method": _method_help(), "data": _data_help()},
              defaults=defaults)
    groups = methods_by_settings()
    if help_method is not None:
        cls = get_method(help_method).settings
        groups = {cls: [help_method]} if cls is not None else {}
        if cls is None:
            p.add_argument_group(f"settings of method {help_method!r}", "none: this method has no settings")
    seen: dict[str, str] = {}
    for cls, methods in groups.items():
        names = [f.name for f in dataclasses.fields(cls)]
        shared = [n for n in names if n in seen]
        title = f"settings of method{'s' if len(methods) > 1 else ''} {', '.join(methods)}"
        text = "YAML keys under `method_options:`" + (
            f"; also {', '.join('--' + n.replace('_', '-') for n in shared)} (listed with "
            f"{', '.join(sorted({seen[n] for n in shared}))})" if shared else "")
        added = add_flags(p.add_argument_group(title, text), cls, skip=tuple(seen),
                          defaults=_settings_defaults(cls, methods))
        seen.update(dict.fromkeys(added, methods[0]))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting by name, value read as YAML, e.g. --set symmetric=true (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with its saved settings")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out (deletes its files)")
    from contrastkit.distributed import DEFAULT_TIMEOUT_S

    p.add_argument("--devices", type=_positive_int, default=1, metavar="N",
                   help="train with N processes on this machine (N GPUs, or N CPU processes sharing the cores): "
                        "starts `torchrun --standalone --nproc_per_node=N -m contrastkit train ...` with the other "
                        "arguments (default 1: this process)")
    p.add_argument("--dist-timeout", type=_positive_float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help="under torchrun (several processes): how long a process waits for the others in a "
                        f"collective before it stops with an error (default {DEFAULT_TIMEOUT_S:g}); not saved "
                        "with the run")


def _given_settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str], dict[str, Any], dict[str, str]]:
    """(settings, their sources, method settings, their sources) from --config, flags and --set."""
    from contrastkit.config import TrainConfig, read_yaml_settings
    from contrastkit.settings import SettingsError

    train_names = {f.name for f in dataclasses.fields(TrainConfig)} - {"method_options"}
    method_names = _method_fields()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    options: dict[str, Any] = {}
    option_sources: dict[str, str] = {}
    if args.config is not None:
        from_file = read_yaml_settings(args.config)
        misplaced = sorted(k for k in from_file if k in method_names and k not in train_names)
        if misplaced:
            raise SettingsError(f"{args.config}: {misplaced} are method settings; put them under `method_options:`")
        file_options = from_file.pop("method_options", None)
        if file_options is not None and not isinstance(file_options, dict):
            raise SettingsError(f"{args.config}: `method_options` must be a mapping of method settings, got "
                                f"{file_options!r}")
        values.update(from_file)
        sources.update({k: str(args.config) for k in from_file})
        options.update(file_options or {})
        option_sources.update({k: f"{args.config} (method_options)" for k in file_options or {}})
    for name in sorted(train_names | method_names):
        value = getattr(args, name, None)
        if value is None:
            continue
        target, where = (values, sources) if name in train_names else (options, option_sources)
        target[name] = value
        where[name] = "--" + name.replace("_", "-")
    for item in args.set:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in train_names and key not in method_names:
            raise SettingsError(f"--set {item}: unknown setting {key!r}; known: {sorted(train_names | method_names)}")
        try:
            value = yaml.safe_load(text) if text.strip() else None  # numbers, booleans and null as YAML reads them
        except yaml.YAMLError:
            value = text
        target, where = (values, sources) if key in train_names else (options, option_sources)
        target[key] = value
        where[key] = f"--set {item}"
    return values, sources, options, option_sources


def _train_config(args: argparse.Namespace):
    """The settings of ``train``, resolved once (:func:`contrastkit.run.resolve_run`, a
    :class:`~contrastkit.run.ResolvedConfig` the parts trust); with ``--resume`` the run folder's own (its
    ``checkpoint.pt``'s, which ``config.yaml`` must agree with), then the command line's. A folder another training
    holds, and a resume of a folder without a checkpoint, are refused here, before any data is loaded."""
    from contrastkit.config import RESUMABLE_CHANGES, TrainConfig
    from contrastkit.run import resolve_run
    from contrastkit.runfolder import check_output_folder, check_resumable, read_saved_config
    from contrastkit.runlock import check_not_held

    values, sources, options, option_sources = _given_settings(args)
    if args.resume:
        out = values.get("out") or f"runs/{values.get('method', 'simclr')}"
        folder = check_output_folder(out)
        check_not_held(folder)
        check_resumable(folder)
        saved = read_saved_config(folder)
        given = (set(values) | set(options)) - {"out", *RESUMABLE_CHANGES}
        if saved is None and not given:
            raise FileNotFoundError(f"--resume: {out} holds no run to continue (no checkpoint.pt or config.yaml); "
                                    f"start one without --resume, giving its settings")
        if saved is not None:  # the run's own settings, then what was given on this command line
            where = f"{out}'s saved settings"
            saved_options = saved.pop("method_options", None) or {}
            values = {**saved, **values, "out": out}
            sources = {**{k: where for k in saved}, **sources}
            options = {**saved_options, **options}
            option_sources = {**{k: where for k in saved_options}, **option_sources}
    config = TrainConfig.from_dict(values, where="settings", sources=sources)
    resolved = resolve_run(config.replace(method_options=options), sources=option_sources)
    if not args.resume:
        check_not_held(check_output_folder(resolved.config.out))
    return resolved


def torchrun_command(argv: list[str], devices: int) -> list[str]:
    """The command ``--devices N`` runs: this interpreter's ``torch.distributed.run --standalone
    --nproc_per_node=N -m contrastkit`` with ``argv`` less its ``--devices`` option."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--devices":
            skip = True
        elif not arg.startswith("--devices="):
            rest.append(arg)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}",
            "-m", "contrastkit", *rest]


def torchrun_environment() -> dict[str, str]:
    """The environment of the processes ``--devices`` starts: this one's, with ``PYTHONSAFEPATH=1`` so that the
    ``python -m contrastkit`` of each process does not put the current folder first on its ``sys.path`` (a stray
    ``scipy.py`` there would be imported in place of scipy; Python 3.11 and later honour it) -- unless contrastkit
    itself is found only there (a source checkout run from its own folder)."""
    import contrastkit

    env = dict(os.environ)
    if Path(contrastkit.__file__).resolve().parents[1] != Path.cwd().resolve():
        env["PYTHONSAFEPATH"] = "1"
    return env


def _check_before_torchrun(resolved: Any, devices: int) -> None:
    """What the settings alone decide about ``devices`` processes (:mod:`contrastkit.processes`: a global batch
    that splits into equal shares, split BatchNorm groups per share, the BatchNorm mode for the device, one GPU per
    process), checked once in this process: the same error from each of N processes and torchrun's report after
    it said nothing more."""
    import torch

    from contrastkit.device import resolve_device
    from contrastkit.processes import check_gpus, check_processes

    config = resolved.config  # the method's batch size and settings filled in
    device = resolve_device(config.device)
    if device.type == "cuda" and device.index is None:
        check_gpus(devices, torch.cuda.device_count())
    options = config.method_options
    check_processes(devices, int(config.batch_size), split_bn=options.get("split_bn"),
                    batchnorm=options.get("batchnorm"), device_type=device.type)


def cmd_train(args: argparse.Namespace) -> int:
    """Train; under torchrun (``WORLD_SIZE`` > 1) join the process group first and leave it at the end. Only
    rank 0 prints; every process returns the same status. ``--devices N`` > 1 hands the command to torchrun."""
    import torch.distributed as dist

    from contrastkit.device import resolve_device
    from contrastkit.distributed import init_from_environment
    from contrastkit.train import Trainer

    if args.devices > 1:
        if "WORLD_SIZE" in os.environ:
            raise ValueError("--devices starts torchrun itself; under torchrun leave it out (torchrun's "
                             "--nproc_per_node sets the processes)")
        _check_before_torchrun(_train_config(args), args.devices)  # once, here, before any process starts
        process = subprocess.Popen(torchrun_command(args.argv, args.devices), env=torchrun_environment())
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:  # torchrun saw the same Ctrl-C and stops its processes: wait for them
                continue
    resolved = _train_config(args)
    started = init_from_environment(resolve_device(resolved.config.device).type, args.dist_timeout)
    trainer = None
    try:
        trainer = Trainer.from_config(resolved)  # built from the settings resolved above, not resolved again
        cfg = trainer.config
        processes = f" x {trainer.world} processes (global batch {cfg.batch_size})" if trainer.world > 1 else ""
        if trainer.data.streamed:
            processes += f", streamed from disk by {trainer.stream_workers} decoding workers per process"
        if trainer.rank == 0:
            print(f"training {cfg.method} on {cfg.data} ({len(trainer.data.train)} {trainer.data.modality}, "
                  f"{trainer.steps_per_epoch} steps/epoch, {cfg.epochs} epochs) on {trainer.device}{processes} "
                  f"-> {cfg.out}", flush=True)
        summary = trainer.fit(resume=args.resume, overwrite=args.overwrite)
        if trainer.rank == 0:
            print(json.dumps(summary, indent=2))
        return EXIT_INTERRUPTED if summary["interrupted"] else 0
    finally:
        trainer = None  # DDP and its reducer go before their process group (gloo can abort at exit otherwise)
        if started:
            dist.destroy_process_group()


def _report_write_errors(metrics: dict[str, Any]) -> int:
    for error in metrics.get("write_errors", []):
        print(f"contrastkit: {error}", file=sys.stderr)
    return 1 if metrics.get("write_errors") else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from contrastkit.evaluate.method import format_timings
    from contrastkit.report import evaluate_run

    metrics = evaluate_run(args.dir, device=args.device, baselines=not args.no_baselines, plots=not args.no_plots,
                           knn_k=args.knn_k, data=args.data)
    if metrics.get("timings"):  # the seconds of each phase (also in metrics.json)
        print(format_timings(metrics["timings"]))
    status = _report_write_errors(metrics)
    if not status:
        print(f"wrote {Path(args.dir) / 'metrics.json'}")
    return status


def cmd_plot(args: argparse.Namespace) -> int:
    from contrastkit.report import plot_run

    for path in plot_run(args.dir, device=args.device, data=args.data):
        print(f"wrote {path}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from contrastkit.search import format_search, search_run

    print(format_search(search_run(args.dir, args.query, top=args.top, item=args.item, device=args.device,
                                   data=args.data)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: SimCLR on mnist5k on this machine, then the evaluation table."""
    from contrastkit.config import TrainConfig
    from contrastkit.report import evaluate_run
    from contrastkit.train import Trainer

    out = Path(args.out)
    config = TrainConfig(method="simclr", data="mnist5k", out=str(out), device=args.device,
                         progress=not args.no_progress, max_minutes=args.max_minutes)
    trainer = Trainer.from_config(config)
    print(f"[1/2] training SimCLR on mnist5k ({trainer.config.epochs} epochs, {trainer.steps_per_epoch} steps "
          f"each, on {trainer.device}) -> {out}", flush=True)
    summary = trainer.fit(resume=not args.overwrite, overwrite=args.overwrite)  # a demo run in --out continues
    if summary["interrupted"]:
        return EXIT_INTERRUPTED
    print("[2/2] evaluating: raw pixels, random-init encoder, trained encoder", flush=True)
    metrics = evaluate_run(out, device=args.device)
    status = _report_write_errors(metrics)
    if not status:
        print(f"metrics: {out / 'metrics.json'}; plots: {out / 'embedding_tsne.png'}, "
              f"{out / 'training_curves.png'}")
    return status


def cmd_mi_bench(args: argparse.Namespace) -> int:
    """Poole et al. 2019's staircase benchmark of MI estimators on 20-d correlated Gaussians.

    Everything that can be checked is checked before the first step: the numbers, the output paths (a folder,
    an unwritable place, a plot format matplotlib does not write, one file for both) and the memory the batch
    implies. Ctrl-C stops it with status 130 and writes nothing."""
    from contrastkit.mi_bench import (
        MAX_SEED,
        BenchConfig,
        check_memory,
        check_output_paths,
        format_table,
        int_from_text,
        plot_runs,
        results_json,
        run_estimator,
    )
    from contrastkit.stopping import SignalStop

    seed = int_from_text(args.seed, "--seed", 0, MAX_SEED, "2**63 - 1")
    steps = int_from_text(args.steps_per_level, "--steps-per-level", 1)
    batch = int_from_text(args.batch_size, "--batch-size", 2)
    check_output_paths(args.json, args.png, "--json", "--png")
    config = BenchConfig(estimators=tuple(args.estimators.split(",")), critic=args.critic,
                         steps_per_level=steps, batch_size=batch, seed=seed)
    check_memory(config, batch_name="--batch-size", steps_name="--steps-per-level")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    runs = {}
    with SignalStop((signal.SIGINT,)) as stop:  # Ctrl-C ends the current estimator after its step
        print(f"mi-bench: {', '.join(config.estimators)} ({config.critic} critic), true MI "
              f"{', '.join(f'{v:g}' for v in config.levels)} nats, {config.steps_per_level} steps each, "
              f"batch {config.batch_size}, seed {config.seed}", flush=True)
        for k, name in enumerate(config.estimators):
            try:
                runs[name] = run_estimator(name, config, stop)
            except KeyboardInterrupt:
                print(f"contrastkit mi-bench: interrupted while training {name} (estimator {k + 1} of "
                      f"{len(config.estimators)}); nothing written", file=sys.stderr)
                return EXIT_INTERRUPTED
    print(format_table(runs))
    args.json.write_text(json.dumps(results_json(runs), indent=2) + "\n")
    print(f"wrote {args.json}")
    if args.png is not None:
        print(f"wrote {plot_runs(runs, args.png)}")
    return 0


def _add_plugin_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE|FILE.py",
                   help="import this first (it registers methods of your own): a module name, looked up on the Python "
                        "path and then in the current folder (which never shadows installed packages), or the path "
                        "of a .py file; repeatable. A run records its plugins: eval, plot and --resume of it import "
                        "them without --plugin")


def _import_plugins(argv: list[str]) -> list[dict[str, Any]] | None:
    """Import the --plugin modules before the parser is built, so their methods' settings become flags; their
    records (:mod:`contrastkit.plugins`), or None when the command names none."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    if not known.plugin:
        return None
    from contrastkit.plugins import load_plugins

    return load_plugins(known.plugin)


def _help_method(words: list[str]) -> str | None:
    """The method of ``train --method NAME --help`` (checked: an unknown name is an error), else None."""
    if "train" not in words or not {"-h", "--help"} & set(words):
        return None
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--method", default=None)
    known, _ = pre.parse_known_args(words[words.index("train") + 1:])
    if known.method is None:
        return None
    from contrastkit.methods.registry import get_method

    return get_method(known.method).name


def _train_plugins(args: argparse.Namespace, given: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """What ``train`` records as the run's plugins (``TrainConfig.plugins``): those --plugin imported; on
    ``--resume`` without --plugin, those the run recorded (imported here when its method is not known otherwise,
    so the resume works from any folder)."""
    from contrastkit.methods.registry import import_recorded_plugins
    from contrastkit.plugins import check_records
    from contrastkit.runfolder import check_output_folder, read_saved_config
    from contrastkit.settings import SettingsError

    for item in args.set:
        if item.partition("=")[0].strip() == "plugins":
            raise SettingsError(f"--set {item}: `plugins` records what --plugin imported; pass --plugin MODULE "
                                f"(or --plugin FILE.py) instead")
    if given is not None:
        return given
    if not args.resume:
        return []
    values = _given_settings(args)[0]
    out = values.get("out") or f"runs/{values.get('method', 'simclr')}"
    saved = read_saved_config(check_output_folder(out))
    if saved is None:
        return []
    records = check_records(saved.get("plugins"), where=f"{out}'s saved settings")
    import_recorded_plugins(records, str(saved.get("method")), out)
    return records


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser(help_method: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; ``help_method`` (``train --method NAME --help``) shows only that method's
    settings."""
    parser = argparse.ArgumentParser(prog="contrastkit", description="Contrastive representation learning.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__,
                                     allow_abbrev=False)
    parser.add_argument("--debug", action="store_true",
                        help=f"on an error, show its full traceback before the one-line message (any command; "
                             f"also after the command's name, or with the environment variable {DEBUG_VARIABLE}=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a method; checkpoints and logs go to --out", allow_abbrev=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a method.\n\n" + __doc__.split("\n\n", 1)[1])
    _add_train_args(p, help_method)
    p.set_defaults(func=cmd_train)
    for name, func, text in (("eval", cmd_eval, "kNN + linear probe of a run (and its baselines) -> metrics.json"),
                             ("plot", cmd_plot, "t-SNE map of the test embeddings and training curves")):
        p = sub.add_parser(name, help=text, description=text, allow_abbrev=False)
        p.add_argument("dir", type=Path, help="a run folder written by `contrastkit train`")
        p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
        _add_plugin_arg(p)
        p.add_argument("--data", default=None, metavar="DATA",
                       help="where the run's data is now, if it moved (its fingerprint is checked)")
        if name == "eval":
            p.add_argument("--no-baselines", action="store_true", help="skip raw pixels and random init")
            p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
            p.add_argument("--knn-k", type=_positive_int, default=None,
                           help="neighbours for kNN (default 20, or the number of training images if fewer)")
        p.set_defaults(func=func)
    text = "print a two-tower run's (clip / siglip) held-out items nearest to typed text, and the texts nearest to one"
    p = sub.add_parser("search", help=text, description=text, allow_abbrev=False)
    p.add_argument("dir", type=Path, help="a run folder written by `contrastkit train --method clip` (or siglip)")
    p.add_argument("--query", required=True, metavar="TEXT", help="the words to search the held-out items with")
    p.add_argument("--top", type=_positive_int, default=5, metavar="K", help="answers in each list (default 5)")
    p.add_argument("--item", type=int, default=None, metavar="N",
                   help="the held-out item whose nearest texts are listed (default: the query's first hit)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    _add_plugin_arg(p)
    p.add_argument("--data", default=None, metavar="DATA",
                   help="where the run's data is now, if it moved (its fingerprint is checked)")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("demo", help="the main job: SimCLR on mnist5k, then the accuracy table", allow_abbrev=False)
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--device", default="auto")
    p.add_argument("--max-minutes", type=_positive_float, default=5.0, help="cap the training time (default 5)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over; by default a demo run already in --out is continued (if its time cap stopped "
                        "it) and evaluated again")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
    from contrastkit.mi_bench import BenchConfig

    text = "benchmark MI estimators on correlated Gaussians (Poole et al. 2019's staircase, true MI 2..10 nats)"
    p = sub.add_parser("mi-bench", help=text, description=text, allow_abbrev=False)
    p.add_argument("--estimators", default="infonce,nwj,club",
                   help="comma-separated subset of infonce, nwj, club (default: all three)")
    p.add_argument("--json", type=Path, required=True, metavar="OUT.json",
                   help="write {estimator: {true_mi: final_estimate}} here")
    p.add_argument("--png", type=Path, default=None, metavar="OUT.png",
                   help="plot of estimate vs training step (.png, or another format matplotlib writes: .pdf, .svg ...)")
    p.add_argument("--steps-per-level", default=str(BenchConfig.steps_per_level), metavar="N",
                   help=f"training steps per MI level (default {BenchConfig.steps_per_level})")
    p.add_argument("--seed", default="0", metavar="SEED", help="random seed, 0 .. 2**63 - 1 (default 0)")
    p.add_argument("--critic", choices=("separable", "concat"), default="separable",
                   help="critic of infonce / nwj: g(x)^T h(y) or an MLP on [x; y] (club fits a Gaussian q(y|x))")
    p.add_argument("--batch-size", default="64", metavar="B",
                   help="pairs per step (>= 2; default 64); refused when its B x B matrices would not fit in memory")
    p.set_defaults(func=cmd_mi_bench)
    return parser


def debug_requested(argv: list[str]) -> bool:
    """``--debug`` anywhere on the command line, or the environment variable ``CONTRASTKIT_DEBUG`` set to anything
    but empty, 0, false or no."""
    return "--debug" in argv or os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def _error(prefix: str, exc: BaseException, debug: bool) -> int:
    """Report ``exc`` in one line (``contrastkit <command>: error: <message>``), after its traceback with --debug;
    returns the exit status 2."""
    if debug:
        traceback.print_exception(exc)
    message = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
        message = f"{message}: {exc.filename}"
    print(f"{prefix}: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(argv)
    words = [arg for arg in argv if arg != "--debug"]  # the top level's flag, accepted after the command too
    try:
        plugins = _import_plugins(words)
    except (ValueError, OSError) as exc:
        return _error("contrastkit", exc, debug)
    try:
        parser = build_parser(_help_method(words))
    except (ValueError, OSError) as exc:
        return _error("contrastkit train", exc, debug)
    args = parser.parse_args(words)
    args.argv = argv  # what --devices hands to torchrun (with --debug: every process shows its tracebacks)
    try:
        if args.command == "train":  # read by _given_settings as the `plugins` setting: what the run records
            args.plugins = _train_plugins(args, plugins)
        return args.func(args)
    except KeyboardInterrupt:
        print(f"contrastkit {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError, FloatingPointError) as exc:
        return _error(f"contrastkit {args.command}", exc, debug)


if __name__ == "__main__":
    sys.exit(main())
