"""`python -m latent_cot.cli ...`: the `latent-cot` command without the installed script."""
import sys

from latent_cot.cli import main

if __name__ == "__main__":  # not when a spawned process re-imports the main module
    sys.exit(main())
