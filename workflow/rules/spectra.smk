# Stage 3: first k eigenpairs of each network's symmetric normalised Laplacian (densim.spectra), cached by topology
# hash in results/spectra/cache: networks that share their bonds reuse one entry, and an entry is never stale.


rule spectra:
    input:
        network="results/networks/{dataset}/{network}.nc",
    output:
        "results/spectra/{dataset}/{network}.nc",
    log:
        "logs/spectra/{dataset}/{network}.log",
    params:
        k=config["spectra"]["k"],
        dense_below=config["spectra"]["dense_below"],
        cache_dir="results/spectra/cache",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/densim.yaml"
    shell:
        "OMP_NUM_THREADS={threads} densim spectra {input.network} --k {params.k} --dense-below {params.dense_below}"
        " --cache-dir {params.cache_dir} --output {output} 2> {log}"
