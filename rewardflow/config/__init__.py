"""The run's config: validated once against the JSON schema, then handed to each rule and stage.

``schema`` checks the merged Snakemake config and fills in its defaults, so every mistake
surfaces at parse time with the dotted key it concerns; ``rules`` derives what each Snakemake
rule is given (its params and input files). Nothing outside this package indexes the raw
config dict: each stage reads its own typed, frozen settings built here.
"""

from rewardflow.config.rules import (
    OPERATIONAL_GENERATION_KEYS,
    OPERATIONAL_LAUNCH_KEYS,
    OPERATIONAL_SIMULATOR_KEYS,
    aggregate_files,
    aggregate_params,
    callable_source_file,
    capped_shards,
    dataset_files,
    generation_files,
    generation_params,
    module_source_file,
    prepare_params,
    primary_reward_name,
    reward_files,
    shard_names,
)
from rewardflow.config.schema import (
    SCHEMA_PATH,
    canonical,
    load_schema,
    section_defaults,
    validate_config,
)

__all__ = [
    "OPERATIONAL_GENERATION_KEYS",
    "OPERATIONAL_LAUNCH_KEYS",
    "OPERATIONAL_SIMULATOR_KEYS",
    "SCHEMA_PATH",
    "aggregate_files",
    "aggregate_params",
    "callable_source_file",
    "canonical",
    "capped_shards",
    "dataset_files",
    "generation_files",
    "generation_params",
    "load_schema",
    "module_source_file",
    "prepare_params",
    "primary_reward_name",
    "reward_files",
    "section_defaults",
    "shard_names",
    "validate_config",
]
