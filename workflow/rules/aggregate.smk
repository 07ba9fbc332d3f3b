rule aggregate_scores:
    input:
        responses=response_shards,
        scores=score_shards,
        generation_stats=generation_stats,
        answer_extractor=aggregate_files(config),
    output:
        json=results_path("{run}/summary.json"),
        markdown=report(
            results_path("{run}/summary.md"),
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        "logs/{run}/aggregate_scores.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        # Only what the summary is computed from: operational settings rerun nothing.
        step=step_params_of(settings=aggregate_params(config)),
        files=files_of_run,
    shell:
        run_script("aggregate_scores")


# A separate step so that a run stopped by its budget fails (non-zero exit, every time it is
# rerun unchanged) while its summary, already written, stays.
rule check_run:
    input:
        summary=results_path("{run}/summary.json"),
    output:
        flag=results_path("{run}/run_complete.txt"),
    log:
        "logs/{run}/check_run.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        step=step_params_of(),
        files=files_of_run,
    shell:
        run_script("check_run")
