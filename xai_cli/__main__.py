"""``python -m xai_cli`` runs the same entry point as the ``xai`` script."""

from xai_cli.cli import main

if __name__ == "__main__":
    main()
