"""benchmarks/gpu.sh runs only where a GPU is lent, a few minutes at a time: a flag it passes that the
command line does not know would waste that call. Every dartsnas command in it is parsed here."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from dartsnas.cli import build_parser

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.sh"


def _commands() -> list[list[str]]:
    text = SCRIPT.read_text().replace("\\\n", " ")
    bench = re.search(r'^bench="\$py -m dartsnas (.*)"$', text, re.M).group(1)
    commands = []
    for line in text.splitlines():
        for part in re.split(r"\|\||&&|;;|\|", line):
            part = part.replace("$bench", "dartsnas " + bench).replace("$flag", "--compile")
            found = re.search(r"(?:\$py -m )?dartsnas (\w.*)", part)
            if found and not part.lstrip().startswith(("#", "bench=")):
                words = shlex.split(found.group(1).replace('"$out/runs"', "OUT").split("2>&1")[0])
                commands.append(words)
    return commands


def test_the_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w[:3]))
def test_every_command_of_the_gpu_script_parses(words):
    args = build_parser().parse_args(words)
    assert args.func is not None


def test_the_prepared_check_fits_its_call():
    """`check` runs compile-tests, compile and ddp; their timeouts must leave the call (at most 8 minutes)."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    total = 0
    for stage in ("compile-tests", "compile", "ddp"):
        body = re.search(rf"^\s*{stage}\)(.*?);;", text, re.M | re.S).group(1)
        total += sum(int(t) for t in re.findall(r"timeout (\d+)", body))
    assert total <= 480


def test_every_command_is_found():
    text = SCRIPT.read_text()
    assert len(_commands()) == text.count("$bench ") + text.count("-m dartsnas ") - 1  # less the bench= line
