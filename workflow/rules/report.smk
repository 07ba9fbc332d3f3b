# Figures and tables for `snakemake --report report.html`; rewardflow/reporting/report.py draws them.
# Every output is flagged report(...), so Snakemake embeds it (with its caption) in the
# single, self-contained HTML file.
rule build_report:
    input:
        summary=results_path("{run}/summary.json"),
        responses=response_shards,
        scores=score_shards,
    output:
        score_distribution=report(
            results_path("{run}/report/score_distribution.png"),
            caption="../report/score_distribution.rst",
            category="Scores",
        ),
        groups=report(
            expand(
                results_path("{{run}}/report/group_{field}.png"),
                field=config["metrics"]["group_by"],
            ),
            caption="../report/group_scores.rst",
            category="Scores",
        ),
        length_vs_score=report(
            results_path("{run}/report/length_vs_score.png"),
            caption="../report/length_vs_score.rst",
            category="Scores",
        ),
        tokens=report(
            results_path("{run}/report/tokens.png"),
            caption="../report/tokens.rst",
            category="Usage",
        ),
        lowest_samples=report(
            results_path("{run}/report/lowest_samples.html"),
            caption="../report/lowest_samples.rst",
            category="Samples",
        ),
        failed_samples=report(
            results_path("{run}/report/failed_samples.html"),
            caption="../report/failed_samples.rst",
            category="Samples",
        ),
    log:
        "logs/{run}/build_report.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        step=step_params_of(group_fields=config["metrics"]["group_by"]),
        files=files_of_run,
    shell:
        run_script("build_report")
