"""The sweep configs resdepth ships, installed as the package `resdepth.experiments`: `resdepth sweep
--config paper` reads `paper.toml` here wherever resdepth is installed."""
