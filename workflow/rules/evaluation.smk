# Stage 6: rollouts of the trained simulators on their test split, scored per trajectory and step
# (densim.evaluation): one job per experiment grid, dataset and seed evaluates all of that grid's runs there, one file
# each ({model}_h{history}.nc), so that Python, PyTorch and the test trajectories load once for all of them.


rule evaluation:
    input:
        checkpoints=lambda w: [f"results/training/{w.dataset}/{m}/h{h}/seed{w.seed}/best.pt" for m, h in evaluation_runs(w)],
        split="results/splits/{dataset}/seed{seed}.json",
        trajectories=lambda w: network_outputs("trajectories", member_datasets(w.dataset)),
        spectra=lambda w: network_outputs("spectra", member_datasets(w.dataset)),
    output:
        directory("results/evaluation/{grid}/{dataset}/seed{seed}"),
    log:
        "logs/evaluation/{grid}/{dataset}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/evaluation/{grid}/{dataset}/seed{seed}.tsv"
    params:
        spec=json.dumps(config["evaluation"], sort_keys=True),
    wildcard_constraints:
        grid=one_of(GRIDS),
        dataset=one_of(config["datasets"]),
    # an evaluation (and a notebook) runs as soon as its inputs exist, ahead of training jobs that are ready too:
    # left to the end, evaluations make a tail of jobs that cannot keep every core busy
    priority: 1
    threads: 1
    resources:
        mem_mb=2000,
        runtime=lambda w: 20 + 10 * len(evaluation_runs(w)),
    conda:
        "../../envs/densim.yaml"
    shell:
        "OMP_NUM_THREADS={threads} densim evaluation {input.checkpoints} --dataset {wildcards.dataset:q} --seed {wildcards.seed}"
        " --split {input.split} --trajectories {input.trajectories} --spectra {input.spectra}"
        " --spec {params.spec:q} --output {output} 2> {log}"
