"""Stage 5, reporting: the Snakemake report, the results viewer, inspect and compare."""
