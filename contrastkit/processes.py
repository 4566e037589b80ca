"""What training on several processes asks of the settings, decided from the settings and the number of processes
alone -- so ``contrastkit train --devices N`` checks it once, in one line, before torchrun starts N processes
(each of which would otherwise print the same error, followed by torchrun's own report), and the trainer checks
the same rules with the same words when it is built inside a process group.

* ``batch_size`` is the global batch: it must split into W equal shares (one per process);
* split BatchNorm (``batchnorm: split``, ``split_bn`` groups) splits each process's share into groups of at least
  two samples;
* ``batchnorm: sync`` is ``torch.nn.SyncBatchNorm``, which PyTorch runs on GPUs only;
* ``batchnorm: shuffle`` (MoCo's shuffling BN across processes) needs two processes or more;
* ``--devices N`` on GPUs puts one process on each GPU: N may not exceed the GPUs of this machine.
"""

from __future__ import annotations

from contrastkit.settings import SettingsError

__all__ = ["check_gpus", "check_processes"]


def check_processes(world: int, batch_size: int, *, split_bn: int | None = 0, batchnorm: str | None = None,
                    device_type: str = "cpu") -> None:
    """Raise a :class:`~contrastkit.settings.SettingsError` (one line: the setting, the numbers, what would work)
    when settings cannot train on ``world`` processes (the module docstring lists the rules). ``split_bn`` and
    ``batchnorm`` are the method's (0 / None: a method without them); ``device_type`` is where the processes
    compute (``"cpu"`` or ``"cuda"``)."""
    if batchnorm == "shuffle" and world < 2:
        raise SettingsError("`batchnorm` 'shuffle' shuffles the momentum keys across processes and needs two or "
                            "more (--devices N or torchrun); in one process use batchnorm: split")
    if world <= 1:
        return
    if batch_size % world:
        raise SettingsError(f"`batch_size` {batch_size} is the global batch and must be a multiple of the {world} "
                            f"processes (each takes batch_size / {world}); use e.g. "
                            f"{max(world, batch_size // world * world)}")
    groups, local = int(split_bn or 0), batch_size // world
    if groups > 1 and (local % groups or local // groups < 2):
        raise SettingsError(f"`split_bn` {groups} needs each process's share of the batch ({batch_size} / {world} = "
                            f"{local}) to be a multiple of it with at least two samples per group")
    if batchnorm == "sync" and device_type != "cuda":
        raise SettingsError(f"`batchnorm` 'sync' uses torch.nn.SyncBatchNorm, which PyTorch runs on GPUs only, and "
                            f"these {world} processes would compute on the {device_type.upper()}: use batchnorm: "
                            f"shuffle (momentum keys) or local")


def check_gpus(processes: int, available: int) -> None:
    """``processes`` processes on GPUs, one each, need that many GPUs on this machine (``available``)."""
    if processes > available:
        raise SettingsError(f"--devices {processes} starts {processes} processes, one per GPU, but this machine has "
                            f"{available} GPU(s): use --devices {max(available, 1)} or fewer, or --device cpu")
