# rewardflow: prepare prompts -> generate responses -> score them -> summarise.
# docs/workflow.md describes the stages; docs/configuration.md every config key.


from snakemake.utils import min_version

min_version("9.0")


# The demo config is the default only when no --configfile is given: Snakemake would otherwise
# merge it under the user's file, leaking demo keys (dataset.path, simulator) into every run.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/viewer.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
