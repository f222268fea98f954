from .heat_conduction import HeatBlock, HeatConductionOperator
from .vheat import VHeat

__all__ = ['HeatBlock', 'HeatConductionOperator', 'VHeat']
