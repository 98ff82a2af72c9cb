"""The `edidub` entry point: every room's sub-command loads in a full installation (the
registry would otherwise show a broken module as merely "unavailable"), and building the
parser stays light (no torch), so every command starts fast."""

import importlib
import subprocess
import sys

import pytest

from bridge.cli import COMMANDS, build_parser


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_command_module_imports_and_registers(name):
    module = importlib.import_module(COMMANDS[name])
    assert callable(module.register)


def test_every_command_parses_its_help_without_error():
    parser = build_parser()
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([name, "--help"])
        assert exit_.value.code == 0


def test_building_the_parser_does_not_import_torch():
    code = (
        "import sys; from bridge.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
