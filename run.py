"""pinn-exp entry point in a checkout: ``python run.py [overrides]`` or ``python run.py -m
[sweep]``; the same as the ``pinn-exp`` command of an installed package (pinn_exp/cli.py)."""

from pinn_exp.cli import main

if __name__ == "__main__":
    main()
