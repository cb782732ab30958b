"""``python -m seqrl`` runs the command line."""

from seqrl.cli import entry_point

if __name__ == "__main__":
    entry_point()
