# Stage 2: LAMMPS runs of every network, compression or impact by the dataset's protocol (densim.trajectories).


rule trajectories:
    input:
        network=lambda w: f"results/networks/{network_source(config, w.dataset)}/{w.network}.nc",
    output:
        "results/trajectories/{dataset}/{network}.nc",
    log:
        "logs/trajectories/{dataset}/{network}.log",
    benchmark:
        "logs/benchmarks/trajectories/{dataset}/{network}.tsv"
    params:
        settings=trajectory_settings_json,
        protocol=lambda w: config["datasets"][w.dataset]["protocol"],
    wildcard_constraints:
        dataset=one_of([dataset for dataset in SIMULATED_DATASETS if dataset not in IMPORTED_DATASETS]),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    group:
        "simulate"
    conda:
        "../../envs/densim.yaml"
    shell:
        "OMP_NUM_THREADS={threads} densim trajectories simulate {input.network} --protocol {params.protocol} --settings {params.settings:q}"
        " --dataset {wildcards.dataset:q} --output {output} 2> {log}"


rule trajectories_import:
    input:
        dump=imported_file(0),
        data=imported_file(1),
    output:
        "results/trajectories/{dataset}/{network}.nc",
    log:
        "logs/trajectories/{dataset}/{network}.log",
    benchmark:
        "logs/benchmarks/trajectories_import/{dataset}/{network}.tsv"
    params:
        settings=trajectory_settings_json,
    wildcard_constraints:
        dataset=one_of(IMPORTED_DATASETS),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/densim.yaml"
    shell:
        "densim trajectories import {input.dump:q} {input.data:q} --dataset {wildcards.dataset:q} --index {wildcards.network}"
        " --settings {params.settings:q} --output {output} 2> {log}"


rule trajectories_summary:
    input:
        trajectories=network_outputs("trajectories", BUILT_DATASETS),
    output:
        table="results/trajectories/summary.csv",
        provenance="results/trajectories/summary.csv.provenance.json",
    log:
        "logs/trajectories/summary.log",
    benchmark:
        "logs/benchmarks/trajectories_summary/summary.tsv"
    params:
        unions=union_options(),
        small_strain=config["trajectories"]["small_strain"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/densim.yaml"
    shell:
        "densim trajectories summary {input.trajectories} {params.unions:q} --small-strain {params.small_strain}"
        " --output {output.table} > {log} 2>&1"
