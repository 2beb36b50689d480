"""The PDE suite. Each PDE is one class here plus one ``conf/pde/NAME.yaml``."""

from pinn_exp.pdes.allen_cahn import AllenCahn
from pinn_exp.pdes.base import PDE, BoundaryTerm
from pinn_exp.pdes.burgers import Burgers
from pinn_exp.pdes.convection import Convection
from pinn_exp.pdes.elliptic import Elliptic
from pinn_exp.pdes.heat import Heat
from pinn_exp.pdes.helmholtz import Helmholtz
from pinn_exp.pdes.laplace import Laplace
from pinn_exp.pdes.poisson_lshape import PoissonLShape
from pinn_exp.pdes.reaction_diffusion import ReactionDiffusion
from pinn_exp.pdes.wave import Wave

__all__ = [
    "PDE",
    "AllenCahn",
    "BoundaryTerm",
    "Burgers",
    "Convection",
    "Elliptic",
    "Heat",
    "Helmholtz",
    "Laplace",
    "PoissonLShape",
    "ReactionDiffusion",
    "Wave",
]
