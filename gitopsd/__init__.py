"""gitopsd: Git branches and tags as environments, every release recorded in the cluster."""

__version__ = "0.1.0.dev0"
