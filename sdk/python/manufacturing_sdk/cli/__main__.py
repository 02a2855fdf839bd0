"""``python -m manufacturing_sdk.cli``: the same as the ``mfg`` command."""

from manufacturing_sdk.cli.main import main

main()
