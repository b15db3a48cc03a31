# Train / validation / test splits by network, per seed (densim.splits).


rule splits:
    input:
        manifest=lambda w: f"results/networks/{network_source(config, w.dataset)}/manifest.csv",
    output:
        "results/splits/{dataset}/seed{seed}.json",
    log:
        "logs/splits/{dataset}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/splits/{dataset}/seed{seed}.tsv"
    params:
        fractions=json.dumps(config["splits"], sort_keys=True),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/densim.yaml"
    shell:
        "densim splits make {input.manifest} --dataset {wildcards.dataset:q} --seed {wildcards.seed}"
        " --fractions {params.fractions:q} --output {output} > {log} 2>&1"


rule splits_union:
    input:
        members=member_splits,
    output:
        "results/splits/{union}/seed{seed}.json",
    log:
        "logs/splits/{union}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/splits_union/{union}/seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/densim.yaml"
    shell:
        "densim splits union {input.members} --dataset {wildcards.union:q} --output {output} > {log} 2>&1"
