# Stage 5: one learned simulator per (dataset, model, history, seed) (densim.training).


rule train:
    input:
        split="results/splits/{dataset}/seed{seed}.json",
        trajectories=lambda w: network_outputs("trajectories", member_datasets(w.dataset)),
        spectra=lambda w: network_outputs("spectra", member_datasets(w.dataset)),
    output:
        checkpoint="results/models/{dataset}/{model}/h{history}/seed{seed}/best.pt",
        history="results/models/{dataset}/{model}/h{history}/seed{seed}/history.json",
    log:
        "logs/train/{dataset}/{model}/h{history}/seed{seed}.log",
    params:
        spec=training_spec_json,
        folder=subpath(output.checkpoint, parent=True),
    wildcard_constraints:
        dataset="|".join(config["datasets"]),
        model="|".join(config["experiments"]["models"]),
        history=r"\d+",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        "../../envs/densim.yaml"
    shell:
        "OMP_NUM_THREADS={threads} densim train --dataset {wildcards.dataset} --model {wildcards.model}"
        " --history {wildcards.history} --seed {wildcards.seed} --split {input.split} --spec {params.spec:q}"
        " --output {params.folder} 2> {log}"
