# Stage 3: first k eigenpairs of each network's symmetric normalised Laplacian (densim.spectra).
# The jobs share a cache keyed by topology hash (config spectra.cache, outside the DAG on purpose: networks that
# share their bonds reuse one entry). Entries are written atomically (a temporary file, then a rename) and checked
# against their content hash when read, so parallel jobs never see a partial entry and a damaged one is recomputed.


rule spectra:
    input:
        network="results/networks/{dataset}/{network}.nc",
    output:
        "results/spectra/{dataset}/{network}.nc",
    log:
        "logs/spectra/{dataset}/{network}.log",
    benchmark:
        "logs/benchmarks/spectra/{dataset}/{network}.tsv"
    wildcard_constraints:
        dataset=one_of(NETWORK_OWNERS),
    params:
        k=config["spectra"]["k"],
        dense_below=config["spectra"]["dense_below"],
        sigma=config["spectra"]["sigma"],
        cache=config["spectra"]["cache"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/densim.yaml"
    shell:
        "OMP_NUM_THREADS={threads} densim spectra {input.network} --k {params.k} --dense-below {params.dense_below}"
        " --sigma {params.sigma} --cache-dir {params.cache:q} --output {output} 2> {log}"
