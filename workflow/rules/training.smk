# Stage 5: normalisation statistics per (dataset, seed) and one learned simulator per (dataset, model, history,
# seed) (densim.training).


rule training_statistics:
    input:
        split="results/splits/{dataset}/seed{seed}.json",
        trajectories=lambda w: network_outputs("trajectories", member_datasets(w.dataset)),
    output:
        "results/training/{dataset}/statistics/seed{seed}.nc",
    log:
        "logs/training/{dataset}/statistics/seed{seed}.log",
    benchmark:
        "logs/benchmarks/training_statistics/{dataset}/seed{seed}.tsv"
    params:
        spec=training_spec_json,
    wildcard_constraints:
        dataset=one_of(config["datasets"]),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/densim.yaml"
    shell:
        "densim training statistics --dataset {wildcards.dataset:q} --split {input.split} --trajectories {input.trajectories}"
        " --spec {params.spec:q} -o {output} 2> {log}"


rule training:
    input:
        split="results/splits/{dataset}/seed{seed}.json",
        statistics="results/training/{dataset}/statistics/seed{seed}.nc",
        trajectories=lambda w: network_outputs("trajectories", member_datasets(w.dataset)),
        spectra=lambda w: network_outputs("spectra", member_datasets(w.dataset)),
    output:
        checkpoint="results/training/{dataset}/{model}/h{history}/seed{seed}/best.pt",
        history="results/training/{dataset}/{model}/h{history}/seed{seed}/history.json",
    log:
        "logs/training/{dataset}/{model}/h{history}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/training/{dataset}/{model}/h{history}/seed{seed}.tsv"
    params:
        spec=training_spec_json,
        folder=subpath(output.checkpoint, parent=True),
    wildcard_constraints:
        dataset=one_of(config["datasets"]),
        model=one_of(TRAINED_MODELS),
        history=r"\d+",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=config["cluster"]["training_gpus"],
    conda:
        "../../envs/densim.yaml"
    shell:
        "OMP_NUM_THREADS={threads} densim training fit --dataset {wildcards.dataset:q} --model {wildcards.model:q}"
        " --history {wildcards.history} --seed {wildcards.seed} --split {input.split} --statistics {input.statistics}"
        " --trajectories {input.trajectories} --spectra {input.spectra} --spec {params.spec:q} --output {params.folder}"
        " 2> {log}"
