"""pinn-exp's Hydra launcher plugin, ``hydra/launcher=slurm`` (:mod:`.slurm_launcher`).

Hydra builds launchers only from the ``hydra_plugins`` namespace package, and finds them by
importing its modules; this folder ships in the wheel beside ``pinn_exp``.
"""
