# The results viewer: one self-contained HTML page of every sample (rewardflow/reporting/viewer/).
# Flagged report(...) so `snakemake --report` embeds it and links it from the report.
rule build_viewer:
    input:
        summary=results_path("{run}/summary.json"),
        responses=response_shards,
        scores=score_shards,
    output:
        viewer=report(
            results_path("{run}/viewer.html"),
            caption="../report/viewer.rst",
            category="Viewer",
            labels={"view": "every sample (viewer)"},
        ),
    log:
        "logs/{run}/build_viewer.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        step=step_params_of(group_fields=config["metrics"]["group_by"]),
        files=files_of_run,
    shell:
        run_script("build_viewer")
