"""Command line: ``contrastkit train | eval | plot | demo`` (``--help`` on each).

Examples::

    contrastkit train --method simclr --data mnist5k --epochs 100 --out runs/simclr
    contrastkit train --config my.yaml --lr 0.001            # YAML settings, command line wins
    contrastkit train --method simclr --negatives queue       # SimCLR with a queue of negatives
    contrastkit train --out runs/simclr --resume              # continue after a crash or a stop
    contrastkit eval runs/simclr                              # writes runs/simclr/metrics.json
    contrastkit plot runs/simclr                              # t-SNE map and training curves
    contrastkit demo                                          # the README's main job
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

__all__ = ["main"]

_TRAIN_FLAGS: dict[str, tuple[type, str]] = {
    "method": (str, "method: simclr | moco | membank"),
    "data": (str, "mnist5k | digits | an image folder (one sub-folder per class) | a .npy / .npz file"),
    "epochs": (int, "training epochs"),
    "out": (str, "output folder (checkpoint, logs, metrics, plots)"),
    "batch_size": (int, "batch size"),
    "optimizer": (str, "sgd | adam | adamw | lars"),
    "lr": (float, "peak learning rate"),
    "weight_decay": (float, "weight decay"),
    "warmup_epochs": (float, "linear warm-up epochs before the cosine decay"),
    "encoder": (str, "small_cnn | small_cnn_gap | resnet18"),
    "augment": (str, "augmentation preset (mnist | cifar | simclr); default by image channels"),
    "image_size": (int, "resize user images to this size"),
    "temperature": (float, "softmax temperature (default: the method's)"),
    "seed": (int, "random seed (a CPU run is repeatable)"),
    "device": (str, "auto | cpu | cuda | cuda:N"),
    "precision": (str, "auto | fp32 | bf16"),
    "max_minutes": (float, "stop after this many minutes of training (a checkpoint is kept)"),
    "checkpoint_every": (int, "also checkpoint every N steps"),
    "log_every": (int, "steps between log lines"),
    "num_threads": (int, "torch CPU threads"),
}
_METHOD_FLAGS: dict[str, tuple[type, str]] = {
    "negatives": (str, "negatives source: batch | queue | bank"),
    "queue_size": (int, "MoCo queue length K"),
    "momentum_encoder": (float, "momentum m of the key encoder (sets key_encoder=momentum)"),
    "num_negatives": (int, "memory-bank negatives per step (default: the whole bank)"),
}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML file of training settings (flags override it)")
    for name, (kind, text) in _TRAIN_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=text)
    for name, (kind, text) in _METHOD_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=text)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any method setting, e.g. --set symmetric=true --set split_bn=4 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt if present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format (default: on GPU)")


def _method_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.negatives is not None:
        options["negatives"] = args.negatives
    if args.queue_size is not None:
        options["queue_size"] = args.queue_size
    if args.momentum_encoder is not None:
        options.update(key_encoder="momentum", momentum=args.momentum_encoder)
    if args.num_negatives is not None:
        options["num_negatives"] = args.num_negatives
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        options[key.strip()] = yaml.safe_load(value)  # numbers, booleans and null as YAML reads them
    return options


def _train_config(args: argparse.Namespace):
    from contrastkit.config import TrainConfig, load_config

    overrides = {name: getattr(args, name) for name in _TRAIN_FLAGS}
    if args.no_progress:
        overrides["progress"] = False
    if args.channels_last is not None:
        overrides["channels_last"] = args.channels_last
    overrides["method_options"] = _method_options(args)
    if args.config is not None:
        return load_config(args.config, overrides)
    values = {k: v for k, v in overrides.items() if v is not None and v != {}}
    if "out" not in values:
        values["out"] = f"runs/{values.get('method', 'simclr')}"
    return TrainConfig.from_dict(values, where="command line")


def cmd_train(args: argparse.Namespace) -> int:
    from contrastkit.train import Trainer

    config = _train_config(args)
    if config.num_threads:
        import torch

        torch.set_num_threads(config.num_threads)
    trainer = Trainer(config)
    cfg = trainer.config
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out) / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    print(f"training {cfg.method} on {cfg.data} ({len(trainer.images)} images, {trainer.steps_per_epoch} steps/epoch, "
          f"{cfg.epochs} epochs) on {trainer.device} -> {cfg.out}", flush=True)
    summary = trainer.fit(resume=args.resume)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from contrastkit.report import evaluate_run

    evaluate_run(args.dir, device=args.device, baselines=not args.no_baselines, plots=not args.no_plots)
    print(f"wrote {Path(args.dir) / 'metrics.json'}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from contrastkit.report import plot_run

    for path in plot_run(args.dir, device=args.device):
        print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: SimCLR on mnist5k on this machine, then the evaluation table."""
    from contrastkit.config import TrainConfig
    from contrastkit.report import evaluate_run
    from contrastkit.train import Trainer

    out = Path(args.out)
    config = TrainConfig(method="simclr", data="mnist5k", out=str(out), device=args.device,
                         progress=not args.no_progress, max_minutes=args.max_minutes)
    trainer = Trainer(config)
    print(f"[1/2] training SimCLR on mnist5k ({trainer.config.epochs} epochs, {trainer.steps_per_epoch} steps "
          f"each, on {trainer.device}) -> {out}", flush=True)
    trainer.fit(resume=args.resume)
    print("[2/2] evaluating: raw pixels, random-init encoder, trained encoder", flush=True)
    evaluate_run(out, device=args.device)
    print(f"metrics: {out / 'metrics.json'}; plots: {out / 'embedding_tsne.png'}, {out / 'training_curves.png'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contrastkit", description="Contrastive representation learning.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a method; checkpoints and logs go to --out")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)
    for name, func, text in (("eval", cmd_eval, "kNN + linear probe of a run (and its baselines) -> metrics.json"),
                             ("plot", cmd_plot, "t-SNE map of the test embeddings and training curves")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("dir", type=Path, help="a run folder written by `contrastkit train`")
        p.add_argument("--device", default="auto")
        if name == "eval":
            p.add_argument("--no-baselines", action="store_true", help="skip raw pixels and random init")
            p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
        p.set_defaults(func=func)
    p = sub.add_parser("demo", help="the main job: SimCLR on mnist5k, then the accuracy table")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--device", default="auto")
    p.add_argument("--max-minutes", type=float, default=5.0, help="cap the training time (default 5)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"contrastkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
