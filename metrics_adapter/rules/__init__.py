"""prometheus-adapter's rule language: config loading, naming, resource mapping, query templates."""
