"""resdepth: reproduce He et al. 2016's degradation experiment (plain vs residual nets by depth)."""

__version__ = "0.1.0"
