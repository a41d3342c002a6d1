"""``python -m lit_loraplus.cli``: the ``lit-loraplus`` command."""

from lit_loraplus.cli import main

main()
