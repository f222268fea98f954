from .heat_conduction import HeatBlock, HeatConductionOperator
from .vheat import VHeat, fve_grid_for

__all__ = ['HeatBlock', 'HeatConductionOperator', 'VHeat', 'fve_grid_for']
