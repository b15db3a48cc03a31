# Stage 1: jammed packings -> spring networks -> tuned Poisson ratio (densim.networks).


rule networks:
    output:
        "results/networks/{dataset}/{network}.nc",
    log:
        "logs/networks/{dataset}/{network}.log",
    benchmark:
        "logs/benchmarks/networks/{dataset}/{network}.tsv"
    params:
        spec=dataset_spec_json,
    wildcard_constraints:
        dataset=one_of(GENERATED_DATASETS),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    group:
        "simulate"
    conda:
        "../../envs/densim.yaml"
    shell:
        "OMP_NUM_THREADS={threads} densim networks generate --dataset {wildcards.dataset:q} --spec {params.spec:q}"
        " --index {wildcards.network} --output {output} 2> {log}"


rule networks_import:
    input:
        data=imported_file(1),
    output:
        "results/networks/{dataset}/{network}.nc",
    log:
        "logs/networks/{dataset}/{network}.log",
    benchmark:
        "logs/benchmarks/networks_import/{dataset}/{network}.tsv"
    wildcard_constraints:
        dataset=one_of(IMPORTED_DATASETS),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/densim.yaml"
    shell:
        "densim networks import {input.data:q} --dataset {wildcards.dataset:q} --index {wildcards.network} --output {output} 2> {log}"


rule networks_manifest:
    input:
        networks=network_files,
    output:
        table="results/networks/{dataset}/manifest.csv",
        provenance="results/networks/{dataset}/manifest.csv.provenance.json",
    wildcard_constraints:
        dataset=one_of(NETWORK_OWNERS),
    log:
        "logs/networks/{dataset}/manifest.log",
    benchmark:
        "logs/benchmarks/networks_manifest/{dataset}/manifest.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/densim.yaml"
    shell:
        "densim networks manifest {input.networks} --output {output.table} > {log} 2>&1"
