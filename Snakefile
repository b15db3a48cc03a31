# densim: learned simulators of disordered elastic networks, from raw inputs to every figure and table.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/networks.smk"
include: "workflow/rules/trajectories.smk"
include: "workflow/rules/spectra.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
