# The results viewer: one self-contained HTML page of every sample (rewardflow/reporting/viewer/).
# The pass over every sample needs no summary, so it is a step of its own that runs beside
# aggregate_scores; build_viewer then only puts the page (its headline from summary.json)
# around what it wrote, which is deleted once the page is built.
rule build_viewer_data:
    input:
        responses=response_shards,
        scores=score_shards,
    output:
        data=temp(results_path("{run}/viewer/data.html")),
        counts=temp(results_path("{run}/viewer/data.json")),
    log:
        "logs/{run}/build_viewer_data.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        step=step_params_of(),
        files=files_of_run,
    shell:
        run_script("build_viewer_data")


# Flagged report(...) so `snakemake --report` embeds it and links it from the report.
rule build_viewer:
    input:
        summary=results_path("{run}/summary.json"),
        data=results_path("{run}/viewer/data.html"),
        counts=results_path("{run}/viewer/data.json"),
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
