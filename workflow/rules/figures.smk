# Stage 7: figures and tables, rendered from the evaluation files by papermill-executed notebooks
# (notebooks/, densim.figures); each executed copy is kept in results/notebooks/. Every notebook rule is the first one
# (`use rule ... with:`) with its own notebook, inputs, outputs and parameters.


rule rollout_accuracy:
    input:
        notebook="notebooks/rollout_accuracy.ipynb",
        evaluations=evaluation_folders("main"),
    output:
        executed="results/notebooks/rollout_accuracy.ipynb",
        pdf="results/figures/rollout_accuracy.pdf",
        png=report("results/figures/rollout_accuracy.png", caption="../report/rollout_accuracy.rst", category="Figures"),
    log:
        "logs/figures/rollout_accuracy.log",
    benchmark:
        "logs/benchmarks/rollout_accuracy/rollout_accuracy.tsv"
    params:
        parameters=notebook_parameters("rollout_accuracy", figure="results/figures/rollout_accuracy"),
    priority: 1  # as soon as its evaluations exist (workflow/rules/evaluation.smk)
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/densim.yaml"
    shell:
        "densim figures {input.notebook} --parameters {params.parameters:q} --output {output.executed} 2> {log}"


use rule rollout_accuracy as history with:
    input:
        notebook="notebooks/history.ipynb",
        evaluations=evaluation_folders("history"),
    output:
        executed="results/notebooks/history.ipynb",
        pdf="results/figures/history.pdf",
        png=report("results/figures/history.png", caption="../report/history.rst", category="Figures"),
        table=report("results/tables/history.csv", caption="../report/history_table.rst", category="Tables"),
    log:
        "logs/figures/history.log",
    benchmark:
        "logs/benchmarks/history/history.tsv"
    params:
        parameters=notebook_parameters("history", figure="results/figures/history", table="results/tables/history.csv"),


use rule rollout_accuracy as igns_ablation with:
    input:
        notebook="notebooks/igns_ablation.ipynb",
        evaluations=evaluation_folders("igns_ablation"),
    output:
        executed="results/notebooks/igns_ablation.ipynb",
        pdf="results/figures/igns_ablation.pdf",
        png=report("results/figures/igns_ablation.png", caption="../report/igns_ablation.rst", category="Figures"),
        table=report("results/tables/igns_ablation.csv", caption="../report/igns_ablation_table.rst", category="Tables"),
        md="results/tables/igns_ablation.md",
    log:
        "logs/figures/igns_ablation.log",
    benchmark:
        "logs/benchmarks/igns_ablation/igns_ablation.tsv"
    params:
        parameters=notebook_parameters("igns_ablation", figure="results/figures/igns_ablation", table="results/tables/igns_ablation"),


use rule rollout_accuracy as modes_and_bias with:
    input:
        notebook="notebooks/modes_and_bias.ipynb",
        evaluations=evaluation_folders("main"),
    output:
        executed="results/notebooks/modes_and_bias.ipynb",
        pdf="results/figures/modes_and_bias.pdf",
        png=report("results/figures/modes_and_bias.png", caption="../report/modes_and_bias.rst", category="Figures"),
    log:
        "logs/figures/modes_and_bias.log",
    benchmark:
        "logs/benchmarks/modes_and_bias/modes_and_bias.tsv"
    params:
        parameters=notebook_parameters("modes_and_bias", figure="results/figures/modes_and_bias"),


use rule rollout_accuracy as tables with:
    input:
        notebook="notebooks/tables.ipynb",
        evaluations=evaluation_folders("main"),
        summary="results/trajectories/summary.csv",
        history_evaluations=evaluation_folders("history") if FIDELITY else [],
        training_histories=training_histories(bool(FIDELITY)),
    output:
        executed="results/notebooks/tables.ipynb",
        csv=report(expand("results/tables/{table}.csv", table=TABLES), caption="../report/tables.rst", category="Tables"),
        md=expand("results/tables/{table}.md", table=TABLES),
        tex=expand("results/tables/{table}.tex", table=TABLES),
        fidelity=FIDELITY,
    log:
        "logs/figures/tables.log",
    benchmark:
        "logs/benchmarks/tables/tables.tsv"
    params:
        parameters=notebook_parameters("tables", summary="results/trajectories/summary.csv", tables="results/tables", figures="results/figures",
                                       steps=config["tables"]["steps"], relative_mse_steps=config["tables"]["relative_mse_steps"],
                                       fidelity=bool(FIDELITY),
                                       history_evaluations=notebook_evaluations("history") if FIDELITY else [],
                                       training_histories=training_histories(bool(FIDELITY))),


use rule rollout_accuracy as regime with:
    input:
        notebook="notebooks/regime.ipynb",
        evaluations=evaluation_folders("main"),
        histories=training_histories(),
        summary="results/trajectories/summary.csv",
    output:
        executed="results/notebooks/regime.ipynb",
        pdf="results/figures/regime.pdf",
        png=report("results/figures/regime.png", caption="../report/regime.rst", category="Figures"),
        table=report("results/tables/regime.csv", caption="../report/regime_table.rst", category="Tables"),
        md="results/tables/regime.md",
    log:
        "logs/figures/regime.log",
    benchmark:
        "logs/benchmarks/regime/regime.tsv"
    params:
        parameters=regime_parameters(),


use rule rollout_accuracy as long_range with:
    input:
        notebook="notebooks/long_range.ipynb",
        evaluations=evaluation_folders("main"),
        networks=long_range_networks(),
    output:
        executed="results/notebooks/long_range.ipynb",
        pdf="results/figures/long_range.pdf",
        png=report("results/figures/long_range.png", caption="../report/long_range.rst", category="Figures"),
        table=report("results/tables/long_range.csv", caption="../report/long_range_table.rst", category="Tables"),
        md="results/tables/long_range.md",
    log:
        "logs/figures/long_range.log",
    benchmark:
        "logs/benchmarks/long_range/long_range.tsv"
    params:
        parameters=long_range_parameters(),


use rule rollout_accuracy as rollouts with:
    input:
        notebook="notebooks/rollouts.ipynb",
        evaluations=evaluation_folders("main"),
        checkpoints=[f"results/training/{d}/{m}/h{h}/seed{s}/best.pt" for d, m, h, s in GRIDS["main"]],
        trajectories=network_outputs("trajectories", BUILT_DATASETS),
        spectra=list(dict.fromkeys(network_outputs("spectra", BUILT_DATASETS))),  # a regime variant shares its source's
    output:
        executed="results/notebooks/rollouts.ipynb",
        pdf="results/figures/rollouts.pdf",
        png=report("results/figures/rollouts.png", caption="../report/rollouts.rst", category="Figures"),
        gif=report("results/figures/rollouts.gif", caption="../report/rollouts_animation.rst", category="Figures"),
    log:
        "logs/figures/rollouts.log",
    benchmark:
        "logs/benchmarks/rollouts/rollouts.tsv"
    params:
        parameters=notebook_parameters("rollouts", figure="results/figures/rollouts", animation="results/figures/rollouts.gif",
                                       spectra_sources={dataset: network_source(config, dataset) for dataset in BUILT_DATASETS}),
