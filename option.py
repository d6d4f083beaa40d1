"""The options of ``main.py`` and ``test.py`` (kept at the top level, where the seed had them).

python -c "import option; option.train_parser().print_help()"
"""

from iefvad.cli.options import resolve_train, test_parser, train_parser

__all__ = ["resolve_train", "test_parser", "train_parser"]
