#!/usr/bin/env bash
# Installs densim from this checkout into the conda environment of envs/densim.yaml.
#
# Snakemake 9 finds this file by name (the env file with .yaml replaced by .post-deploy.sh) and, once, right after
# `conda env create`, copies it next to the environment (.snakemake/conda/HASH.post-deploy.sh, or under
# --conda-prefix) and runs `source CONDA/bin/activate ENV; /usr/bin/env bash HASH.post-deploy.sh` from Snakemake's
# working directory (snakemake/deployment/conda.py: Env.create, Env.execute_deployment_script). So this file's own
# path says nothing about the checkout; what it can rely on: the environment is active (python is the env's), the
# working directory is the one Snakemake runs in, and Snakemake's own environment variables are passed on.
# The checkout is therefore the working directory (run snakemake from the checkout, as the README does), or
# DENSIM_SOURCE when set (e.g. with `snakemake --directory elsewhere`). A failure here makes Snakemake delete the
# half-made environment and print this script's output.
#
# Editable install: the environment runs the checkout's current code. Snakemake's hash of the environment covers
# envs/densim.yaml and this file, not src/, so a regular install would silently go stale. It also means one
# environment serves one checkout: do not share a --conda-prefix between checkouts.
set -euo pipefail
# Snakemake drops PYTHONPATH for jobs in conda environments (snakemake/shell.py), not for this script: drop it too.
unset PYTHONPATH

source_dir="${DENSIM_SOURCE:-$PWD}"
if [ ! -f "$source_dir/pyproject.toml" ] || [ ! -f "$source_dir/src/densim/__init__.py" ]; then
    echo "densim post-deploy: $source_dir is not a densim checkout (needs pyproject.toml and src/densim)." >&2
    echo "Run snakemake from the checkout, or set DENSIM_SOURCE=/path/to/the/checkout." >&2
    exit 1
fi

# The dependencies are the pins of envs/densim.yaml (installed by conda's pip): install densim alone, then fail here,
# not in a job, if the environment lacks one of its requirements.
python -m pip install --no-deps --editable "$source_dir"
python -m pip check
densim --version
