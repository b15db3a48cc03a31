# Stage 6: rollouts of every trained simulator on its test split, scored per trajectory and step
# (densim.evaluation).


rule evaluation:
    input:
        checkpoint="results/training/{dataset}/{model}/h{history}/seed{seed}/best.pt",
        split="results/splits/{dataset}/seed{seed}.json",
        trajectories=lambda w: network_outputs("trajectories", member_datasets(w.dataset)),
        spectra=lambda w: network_outputs("spectra", member_datasets(w.dataset)),
    output:
        "results/evaluation/{dataset}/{model}/h{history}/seed{seed}.nc",
    log:
        "logs/evaluation/{dataset}/{model}/h{history}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/evaluation/{dataset}/{model}/h{history}/seed{seed}.tsv"
    params:
        spec=json.dumps(config["evaluation"], sort_keys=True),
    wildcard_constraints:
        dataset=one_of(config["datasets"]),
        model=one_of(TRAINED_MODELS),
        history=r"\d+",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/densim.yaml"
    shell:
        "OMP_NUM_THREADS={threads} densim evaluation {input.checkpoint} --dataset {wildcards.dataset:q} --model {wildcards.model:q}"
        " --history {wildcards.history} --split {input.split} --trajectories {input.trajectories} --spectra {input.spectra}"
        " --spec {params.spec:q} --output {output} 2> {log}"
