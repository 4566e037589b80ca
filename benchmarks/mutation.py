"""Mutation score of the survey's math against its own tests (mutmut; a measurement, not part of CI).

Each module group is mutated on its own, in a scratch copy of ``contrastkit/`` and ``tests/`` under a temporary
folder (mutmut 3 writes its ``mutants/`` folder there; the working tree is never touched), and each mutant is run
against that group's own test files only, fast tests only (``-m "not slow"``):

=============  ============================  =========================================================
group          mutated                       tests
=============  ============================  =========================================================
losses         contrastkit/losses/*.py       tests/losses/
mining         contrastkit/mining.py         tests/test_mining.py
similarity     contrastkit/similarity.py     tests/test_similarity.py
mi             contrastkit/mi.py             tests/test_mi.py
negatives      contrastkit/negatives.py      tests/test_negatives.py
=============  ============================  =========================================================

A mutant is *killed* when a test fails (or the run times out) with it in place, and *survives* when every test
passes. mutmut runs, for each mutant, the tests that executed the mutated function in a clean run, so a
function no test calls gives "no tests" mutants (counted as survivors). Some survivors are *equivalent*: the
change cannot alter any result (e.g. a message of an error that no caller matches on is not one of them -- a
message is a result -- but ``x.clamp(min=0)`` after an operation that is already non-negative is). They are listed
in :data:`EQUIVALENT` with a one-line reason each, keyed by the file and the exact line before and after, and the
score is given twice: killed / all mutants and killed / non-equivalent mutants.

mutmut 3 does not mutate functions with decorators other than ``@staticmethod`` / ``@classmethod``; the scratch
copy therefore applies such decorators after the definition (``f = deco(f)``, the same function to every caller;
see :func:`_undecorate`), so the losses under ``@full_precision`` and the ``@torch.no_grad()`` updates of
``negatives.py`` are mutated too. Left outside the score: module-level constants, default arguments that are not
plain literals, abstract methods and overloads (stubs), and lines no selected test runs ("no tests" mutants are
counted as survivors). Line numbers in the report are the working tree's.

Needs ``pip install mutmut`` (``pip install -e .[mutation]``). On the project's 2-core machine, one worker:
about N minutes for all groups (see the README's "Tests" section for the last measured score and time).

Usage: python benchmarks/mutation.py [--group losses --group mi ...] [--workers 1] [--keep | --scratch DIR
       [--rerun-survivors]] [--json FILE]

``--scratch DIR`` keeps each group's copy in ``DIR/<group>`` and resumes it on the next call (mutmut keeps every
mutant's result); with ``--rerun-survivors`` the mutants that survived are run again against the working tree's
current tests -- the way to check new tests without running every mutant again.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: group -> (files to mutate (glob patterns relative to the repository root), its own test files)
GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "losses": (("contrastkit/losses/*",), ("tests/losses",)),
    "mining": (("contrastkit/mining.py",), ("tests/test_mining.py",)),
    "similarity": (("contrastkit/similarity.py",), ("tests/test_similarity.py",)),
    "mi": (("contrastkit/mi.py",), ("tests/test_mi.py",)),
    "negatives": (("contrastkit/negatives.py",), ("tests/test_negatives.py",)),
}

#: Equivalent mutants: (file, source line before, line after) -> why no result can change. Lines are compared
#: stripped of surrounding white space; an entry that matches no surviving mutant is reported as stale.
EQUIVALENT: dict[tuple[str, str, str], str] = {
}

DETECTED = {"killed", "timeout", "segfault", "caught by type check"}

# Runs inside the scratch folder after `mutmut run`: every mutant's status, and the diff of each one not killed.
_COLLECT = r"""
import json, sys
from mutmut.configuration import config
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

out = []
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        diff = "" if status == "killed" else get_diff_for_mutant(name, path=data.path)
        out.append({"name": name, "path": str(path), "status": status, "diff": diff})
json.dump(out, sys.stdout)
"""


@dataclass
class Mutant:
    name: str
    path: str  # relative to the repository root
    status: str
    diff: str
    line: int | None = None
    before: str = ""
    after: str = ""
    equivalent: str | None = None


@dataclass
class GroupResult:
    group: str
    mutants: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0
    skipped_functions: list[str] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(m.status in statuses for m in self.mutants)

    @property
    def killed(self) -> int:
        return sum(m.status in DETECTED for m in self.mutants)

    @property
    def equivalent(self) -> int:
        return sum(m.equivalent is not None for m in self.mutants)


def _config_section(patterns: tuple[str, ...], tests: tuple[str, ...]) -> str:
    def toml_list(items: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["contrastkit"]\n'
        f"only_mutate = {toml_list(patterns)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        f'pytest_add_cli_args = {toml_list(["-m", "not slow", "-p", "no:cacheprovider", "-q"])}\n'
        'process_isolation = "forkserver"\n'  # torch is not fork-safe after threads have run
        "use_git_change_detection = false\n"
        "use_setproctitle = false\n"
    )


_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")


def _scratch_copy(scratch: Path, patterns: tuple[str, ...], tests: tuple[str, ...]) -> None:
    """A fresh scratch copy, or the tests refreshed in an existing one (its mutants and results are kept)."""
    if (scratch / "contrastkit").exists():
        for files in (scratch / "tests", scratch / "mutants" / "tests"):
            if files.parent.exists():
                shutil.copytree(ROOT / "tests", files, ignore=_IGNORE, dirs_exist_ok=True)
        changed = [str(p.relative_to(ROOT)) for pattern in patterns for p in ROOT.glob(pattern) if p.suffix == ".py"
                   and _undecorate(p.read_text())[0] != (scratch / p.relative_to(ROOT)).read_text()]
        if changed:
            print(f"mutation.py: the working tree's {', '.join(changed)} differ(s) from the scratch copy in "
                  f"{scratch}; its results are of the copy", file=sys.stderr)
        return
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "contrastkit", scratch / "contrastkit", ignore=_IGNORE)
    origins = {}
    for pattern in patterns:
        for path in ROOT.glob(pattern):
            if path.suffix == ".py":
                text, origins[str(path.relative_to(ROOT))] = _undecorate(path.read_text())
                (scratch / path.relative_to(ROOT)).write_text(text)
    (scratch / "line_origins.json").write_text(json.dumps(origins))
    shutil.copytree(ROOT / "tests", scratch / "tests", ignore=_IGNORE)
    text = (ROOT / "pyproject.toml").read_text()
    if "[tool.mutmut]" in text:
        raise SystemExit("mutation.py: pyproject.toml already has a [tool.mutmut] section; this script writes its own")
    (scratch / "pyproject.toml").write_text(text + _config_section(patterns, tests))


#: decorators left in place: mutmut handles a lone @staticmethod / @classmethod; abstract methods and overloads
#: are bodiless stubs
_KEPT_DECORATORS = {"staticmethod", "classmethod", "abstractmethod", "overload"}


def _rewritable(node: ast.AST) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and bool(node.decorator_list) and not any(
        ast.unparse(d).rpartition(".")[2] in _KEPT_DECORATORS for d in node.decorator_list)


def _undecorate(text: str) -> tuple[str, list[int]]:
    """The module with ``@deco`` functions rewritten as ``def f`` followed by ``f = deco(f)``, and for each line of
    the result the line of ``text`` it comes from (an inserted line: the function's last line).

    mutmut 3 does not mutate decorated functions (their copies could re-run the decorator's side effects);
    applying the decorator after the definition is the same function to every caller, and lets mutmut mutate
    the body (e.g. the losses wrapped by ``@full_precision`` and the ``@torch.no_grad()`` updates of
    ``negatives.py``). Decorator lines become blank lines, so every other line keeps its number.
    """
    tree = ast.parse(text)
    lines = text.splitlines()
    after: dict[int, list[str]] = {}  # 1-based last line of a function -> lines to insert after it
    blank: set[int] = set()
    scopes = [tree.body] + [n.body for n in tree.body if isinstance(n, ast.ClassDef)]
    for body in scopes:
        for node in body:
            if not _rewritable(node):
                continue
            wrapped = node.name
            for decorator in reversed(node.decorator_list):
                wrapped = f"({ast.unparse(decorator)})({wrapped})"
            indent = " " * node.col_offset
            after.setdefault(node.end_lineno, []).append(f"{indent}{node.name} = {wrapped}")
            for d in node.decorator_list:
                blank.update(range(d.lineno, d.end_lineno + 1))
    out, origin = [], []
    for number, line in enumerate(lines, start=1):
        out.append("" if number in blank else line)
        origin.append(number)
        for extra in after.get(number, []):
            out.append(extra)
            origin.append(number)
    return "\n".join(out) + "\n", origin


def _unmutated_functions(files: list[Path]) -> list[str]:
    """Functions mutmut leaves alone even after :func:`_undecorate`: abstract methods and overloads (stubs), and
    a lone @staticmethod / @classmethod is mutated as it is."""
    out = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.decorator_list \
                    and not _rewritable(node):
                names = [ast.unparse(d) for d in node.decorator_list]
                if names not in (["staticmethod"], ["classmethod"]):
                    out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} (@{', @'.join(names)})")
    return out


def _changed_lines(diff: str) -> tuple[int | None, str, str]:
    """(offset of the first changed line within the function, 1-based; removed lines; added lines)."""
    offset = None
    removed, added = [], []
    position = 0
    for line in diff.splitlines():
        hunk = re.match(r"@@ -(\d+)", line)
        if hunk:
            position = int(hunk.group(1))
            continue
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            offset = position if offset is None else offset
            removed.append(line[1:].strip())
            position += 1
        elif line.startswith("+"):
            offset = position if offset is None else offset
            added.append(line[1:].strip())
        else:
            position += 1
    return offset, " / ".join(removed), " / ".join(added)


def _function_start(source: Path, mutant_name: str) -> int | None:
    """First line (decorators included) of the function a mutant name points at, e.g.
    ``contrastkit.mi.xǁCLUBǁforward__mutmut_3`` or ``contrastkit.mining.x_pair_mask__mutmut_1``."""
    local = mutant_name.rpartition(".")[2].rsplit("__mutmut_", 1)[0]
    if local.startswith("xǁ"):
        cls, func = local[2:].split("ǁ")[:2]
    else:
        cls, func = None, local[2:] if local.startswith("x_") else local
    tree = ast.parse(source.read_text())
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls] if cls else [tree]
    for scope in scopes:
        for node in (scope.body if cls else ast.walk(scope)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func:
                return min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return None


def _mutmut(scratch: Path, args: list[str], env: dict[str, str], group: str) -> None:
    log = scratch / "mutmut.log"
    with log.open("a") as f:
        run = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=scratch, env=env, stdout=f,
                             stderr=subprocess.STDOUT)
    if run.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"mutation.py: `mutmut {args[0]}` failed for {group} (exit {run.returncode}):\n{tail}")


def _collect(scratch: Path, env: dict[str, str]) -> list[dict[str, str]]:
    collected = subprocess.run([sys.executable, "-c", _COLLECT], cwd=scratch, env=env, capture_output=True,
                               text=True, check=True)
    return json.loads(collected.stdout)


def run_group(group: str, workers: int, scratch_root: Path | None, keep: bool, rerun: bool) -> GroupResult:
    patterns, tests = GROUPS[group]
    files = sorted({p for pattern in patterns for p in ROOT.glob(pattern) if p.suffix == ".py"})
    result = GroupResult(group, skipped_functions=_unmutated_functions(files))
    if scratch_root is None:
        scratch = Path(tempfile.mkdtemp(prefix=f"contrastkit-mutation-{group}-"))
    else:
        scratch = scratch_root / group
    _scratch_copy(scratch, patterns, tests)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    try:
        _mutmut(scratch, ["run", "--max-children", str(workers)], env, group)  # resumes an unfinished run
        if rerun:  # survivors of an earlier run against the refreshed tests
            again = [m["name"] for m in _collect(scratch, env) if m["status"] not in DETECTED]
            for i in range(0, len(again), 200):
                _mutmut(scratch, ["run", "--max-children", str(workers), *again[i:i + 200]], env, group)
        result.seconds = time.perf_counter() - start
        origins = json.loads((scratch / "line_origins.json").read_text())
        for item in _collect(scratch, env):
            mutant = Mutant(item["name"], item["path"], item["status"], item["diff"])
            if mutant.diff:
                offset, mutant.before, mutant.after = _changed_lines(mutant.diff)
                start_line = _function_start(scratch / mutant.path, mutant.name)
                if offset is not None and start_line is not None:
                    mutant.line = origins[mutant.path][start_line + offset - 2]  # the working tree's line
                mutant.equivalent = EQUIVALENT.get((mutant.path, mutant.before, mutant.after))
            result.mutants.append(mutant)
    finally:
        if keep or scratch_root is not None:
            print(f"[{group}] scratch copy kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return result


def _percent(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f} %" if b else "    -"


def report(results: list[GroupResult], seconds: float) -> None:
    print(f"{'group':<11} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} "
          f"{'equivalent':>10} {'killed/all':>10} {'killed/non-eq':>13} {'minutes':>7}")
    totals = [0, 0, 0, 0, 0, 0]
    for r in results:
        row = [len(r.mutants), r.killed, r.count("timeout"), r.count("survived"), r.count("no tests"), r.equivalent]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        print(f"{r.group:<11} {row[0]:>7} {row[1]:>6} {row[2]:>7} {row[3]:>8} {row[4]:>8} {row[5]:>10} "
              f"{_percent(row[1], row[0]):>10} {_percent(row[1], row[0] - row[5]):>13} {r.seconds / 60:>7.1f}")
    if len(results) > 1:
        print(f"{'all':<11} {totals[0]:>7} {totals[1]:>6} {totals[2]:>7} {totals[3]:>8} {totals[4]:>8} "
              f"{totals[5]:>10} {_percent(totals[1], totals[0]):>10} "
              f"{_percent(totals[1], totals[0] - totals[5]):>13} {seconds / 60:>7.1f}")
    other = sorted({m.status for r in results for m in r.mutants} - DETECTED - {"survived", "no tests"})
    if other:
        print("other statuses (counted as not killed):", ", ".join(
            f"{s}: {sum(m.status == s for r in results for m in r.mutants)}" for s in other))

    survivors = [m for r in results for m in r.mutants if m.status not in DETECTED and m.equivalent is None]
    print(f"\nSurviving mutants that are not listed as equivalent: {len(survivors)}")
    for m in sorted(survivors, key=lambda m: (m.path, m.line or 0)):
        print(f"\n{m.path}:{m.line}  {m.name}  [{m.status}]")
        for line in m.diff.splitlines():
            if line.startswith(("-", "+")) and not line.startswith(("---", "+++")):
                print(f"    {line}")
    equivalent = [m for r in results for m in r.mutants if m.equivalent is not None]
    if equivalent:
        print(f"\nEquivalent mutants ({len(equivalent)}):")
        for m in sorted(equivalent, key=lambda m: (m.path, m.line or 0)):
            print(f"  {m.path}:{m.line}  {m.before!r} -> {m.after!r}: {m.equivalent}")
    groups = {r.group for r in results}
    used = {(m.path, m.before, m.after) for r in results for m in r.mutants}
    stale = [key for key in EQUIVALENT if key not in used
             and any(Path(key[0]).match(p) or key[0] == p for g in groups for p in GROUPS[g][0])]
    if stale:
        print("\nStale EQUIVALENT entries (no such surviving mutant any more):")
        for key in stale:
            print(f"  {key}")
    skipped = [s for r in results for s in r.skipped_functions]
    if skipped:
        print("\nNot mutated (abstract methods and overloads: stubs):")
        for s in skipped:
            print(f"  {s}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", choices=list(GROUPS), help="repeatable; default: all groups")
    parser.add_argument("--workers", type=int, default=1, help="mutmut's parallel test processes (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep each scratch copy (its path is printed)")
    parser.add_argument("--scratch", type=Path, help="scratch copies in DIR/<group>, kept; an existing one is "
                        "resumed (mutants and results kept, tests refreshed from the working tree)")
    parser.add_argument("--rerun-survivors", action="store_true", help="with --scratch: run the mutants not "
                        "killed before again, against the refreshed tests")
    parser.add_argument("--json", type=Path, help="also write every mutant's status and diff here")
    args = parser.parse_args(argv)
    if args.rerun_survivors and args.scratch is None:
        parser.error("--rerun-survivors needs --scratch (the earlier run's copies)")
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        try:
            import mutmut  # noqa: F401
        except ImportError:
            raise SystemExit("mutation.py: needs mutmut (pip install mutmut, or pip install -e .[mutation])") from None
    start = time.perf_counter()
    results = []
    for group in args.group or list(GROUPS):
        print(f"[{group}] mutating {', '.join(GROUPS[group][0])} against {', '.join(GROUPS[group][1])} ...",
              file=sys.stderr, flush=True)
        results.append(run_group(group, args.workers, args.scratch, args.keep, args.rerun_survivors))
    seconds = time.perf_counter() - start
    report(results, seconds)
    if args.json:
        args.json.write_text(json.dumps([{"group": r.group, **m.__dict__} for r in results for m in r.mutants],
                                        indent=1))
    print(f"\nwall time: {seconds / 60:.1f} min; command: python benchmarks/mutation.py "
          f"{' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
