"""Launch: the only layer that imports Hydra (the app, the preflight of overrides and sweeps,
sweep expansion and the resolvers the configs use)."""
