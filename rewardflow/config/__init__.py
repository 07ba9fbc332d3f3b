"""The run's config: validated once against the JSON schema, then handed to each rule and stage.

``schema`` checks the merged Snakemake config and fills in its defaults, so every mistake
surfaces at parse time with the dotted key it concerns; ``rules`` derives what each Snakemake
rule is given (its params and input files); ``generation`` holds the generation stage's typed
settings and the one definition of what decides a response; ``paths`` says where runs live.
Nothing outside this package indexes the raw config dict: each stage reads its own typed,
frozen settings built here.
"""

from rewardflow.config.generation import (
    OPERATIONAL_GENERATION_KEYS,
    OPERATIONAL_LAUNCH_KEYS,
    OPERATIONAL_SIMULATOR_KEYS,
    GenerationStageSettings,
    ResponseIdentity,
    generation_params,
)
from rewardflow.config.paths import DEFAULT_CACHE_DIR, RESULTS_DIR, run_dir
from rewardflow.config.rules import (
    aggregate_files,
    aggregate_params,
    callable_source_file,
    capped_shards,
    dataset_files,
    generation_files,
    module_source_file,
    prepare_params,
    primary_reward_name,
    reward_files,
    scoring_workers,
    shard_labels,
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
    "DEFAULT_CACHE_DIR",
    "OPERATIONAL_GENERATION_KEYS",
    "OPERATIONAL_LAUNCH_KEYS",
    "OPERATIONAL_SIMULATOR_KEYS",
    "RESULTS_DIR",
    "SCHEMA_PATH",
    "GenerationStageSettings",
    "ResponseIdentity",
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
    "run_dir",
    "scoring_workers",
    "section_defaults",
    "shard_labels",
    "shard_names",
    "validate_config",
]
