"""Shell completion for bash, zsh and fish: the scripts, their installation, and the
``_QUEUECTL_COMPLETE`` protocol they speak, through the console script (which runs Click
with standalone_mode=False)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import QUEUECTL, Cli, assert_error, assert_ok, env_without_url

SCRIPT_MARKS = {
    "bash": "_QUEUECTL_COMPLETE=complete_bash",
    "zsh": "_QUEUECTL_COMPLETE=complete_zsh",
    "fish": "_QUEUECTL_COMPLETE=complete_fish",
}


@pytest.fixture
def nowhere(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """No Redis to reach, no embedded one to start, and a setting a command would refuse:
    completion must need none of them."""
    return env_without_url(env, str(tmp_path / "never-created")) | {
        "QUEUECTL_CONCURRENCY": "0"}


def complete(env: dict[str, str], **protocol: str) -> str:
    """What the console script answers when a shell asks it for completions."""
    proc = subprocess.run([QUEUECTL], env=env | protocol, capture_output=True, timeout=60,
                          check=False, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and proc.stderr == b"", (proc.returncode, proc.stderr)
    return proc.stdout.decode()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_the_script(cli: Cli, nowhere: dict[str, str],
                                           tmp_path: Path, shell: str) -> None:
    script = assert_ok(cli("--show-completion", shell, env=nowhere))
    assert SCRIPT_MARKS[shell] in script and "queuectl" in script
    assert not (tmp_path / "never-created").exists()


def test_the_bash_script_completes_in_bash(nowhere: dict[str, str]) -> None:
    bash = shutil.which("bash")
    assert bash, "bash is required"
    program = (f'source <("{QUEUECTL}" --show-completion bash)\n'
               f'COMP_WORDS=(queuectl dl); COMP_CWORD=1; _queuectl_completion "{QUEUECTL}"\n'
               'echo "${COMPREPLY[@]}"\n'
               f'COMP_WORDS=(queuectl config s); COMP_CWORD=2; _queuectl_completion "{QUEUECTL}"\n'
               'echo "${COMPREPLY[@]}"\n')
    proc = subprocess.run([bash, "--norc", "-c", program], env=nowhere, capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == ["dlq", "set"]


@pytest.mark.parametrize("instruction", ["complete_bash", "bash_complete"])
def test_bash_protocol_lists_subcommands_and_options(nowhere: dict[str, str],
                                                     instruction: str) -> None:
    """Typer's order (complete_bash, what the script sends) and Click's (bash_complete)."""
    def ask(words: str, cword: int) -> list[str]:
        return complete(nowhere, _QUEUECTL_COMPLETE=instruction, COMP_WORDS=words,
                        COMP_CWORD=str(cword)).splitlines()

    assert ask("queuectl dl", 1) == ["dlq"]
    assert set(ask("queuectl ", 1)) >= {"enqueue", "status", "dlq", "config", "worker"}
    assert ask("queuectl dlq ", 2) == ["list", "retry", "purge"]
    assert ask("queuectl list --st", 2) == ["--state"]


def test_zsh_and_fish_protocols(nowhere: dict[str, str]) -> None:
    zsh = complete(nowhere, _QUEUECTL_COMPLETE="complete_zsh",
                   _TYPER_COMPLETE_ARGS="queuectl con")
    assert zsh.startswith("_arguments") and '"config":' in zsh
    fish = complete(nowhere, _QUEUECTL_COMPLETE="complete_fish",
                    _TYPER_COMPLETE_ARGS="queuectl config s",
                    _TYPER_COMPLETE_FISH_ACTION="get-args")
    assert [line.split("\t")[0] for line in fish.splitlines()] == ["set"]


@pytest.mark.parametrize(("shell", "installed"), [
    ("bash", ".bash_completions/queuectl.sh"),
    ("zsh", ".zfunc/_queuectl"),
    ("fish", ".config/fish/completions/queuectl.fish"),
])
def test_install_completion_writes_the_script_where_the_shell_reads_it(
        cli: Cli, nowhere: dict[str, str], tmp_path: Path, shell: str, installed: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out = assert_ok(cli("--install-completion", shell, env=nowhere | {"HOME": str(home)}))
    assert out == f"{shell} completion installed in {home / installed}; it takes effect in " \
                  "new shells\n"
    assert SCRIPT_MARKS[shell] in (home / installed).read_text()
    if shell == "bash":
        assert f"source '{home / installed}'" in (home / ".bashrc").read_text()


def test_a_shell_must_be_named(cli: Cli) -> None:
    assert_error(cli("--show-completion"), 2, "requires an argument")
    assert_error(cli("--install-completion", "tcsh"), 3, "'tcsh' is not one of 'bash', "
                                                         "'zsh', 'fish'")
