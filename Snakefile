# rewardflow: prepare prompts -> generate responses -> score them -> summarise.
# docs/workflow.md describes the stages; docs/configuration.md every config key.


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
