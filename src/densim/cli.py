"""The ``densim`` command: each pipeline stage by hand, outside Snakemake.

Run ``densim --help`` or ``densim <stage> --help``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from densim import __version__


def _load_mapping(text: str) -> dict:
    """A JSON/YAML mapping given inline or as a file path."""
    # JSON first: PyYAML reads numbers like 1e-12 (no decimal point) as strings
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = yaml.safe_load(Path(text).read_text())
    if not isinstance(value, dict):
        raise SystemExit(f"densim: expected a mapping (JSON or YAML, inline or a file), got {text!r}")
    return value


def _dataset_config(args):
    from densim.networks import ConfigError, DatasetConfig

    try:
        return DatasetConfig.from_dict(args.dataset, _load_mapping(args.spec))
    except (ConfigError, TypeError) as err:
        raise SystemExit(f"densim: invalid dataset spec: {err}") from err


def cmd_networks_generate(args) -> None:
    from densim.io import write_dataset
    from densim.networks import generate_network, network_dataset
    from densim.provenance import provenance_attrs

    config = _dataset_config(args)
    generated = generate_network(config, args.index)
    ds = network_dataset(config, args.index, generated, provenance_attrs(config.to_dict()))
    write_dataset(ds, args.output)
    logging.getLogger("densim").info("wrote %s", args.output)


def cmd_networks_manifest(args) -> None:
    from densim.io import read_dataset, write_table
    from densim.networks import manifest
    from densim.provenance import provenance_attrs

    datasets = [read_dataset(path, "network") for path in args.networks]
    configs = {ds.attrs.get("config") for ds in datasets}
    if len(configs) != 1:
        raise SystemExit("densim: the network files come from different dataset configurations")
    table = manifest(datasets)
    write_table(table, args.output, provenance_attrs(json.loads(configs.pop()), inputs=args.networks))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))


def cmd_provenance(args) -> None:
    from densim.io import read_provenance

    attrs = read_provenance(args.file)
    width = max(map(len, attrs), default=0)
    for key, value in attrs.items():
        value = str(value)
        if value.startswith("{"):
            try:
                value = json.dumps(json.loads(value), indent=2, sort_keys=True).replace("\n", "\n" + " " * (width + 2))
            except json.JSONDecodeError:
                pass
        print(f"{key:<{width}}  {value}")


SPEC_HELP = """dataset spec: a JSON or YAML mapping, inline or a file, with the keys of one `datasets.<name>` section of
config.yaml (generator, networks, nu_range, tolerance, seed, stiffness, packing, node_opt, noi_pru); missing keys
take their defaults. Example: '{"generator": "bond_pru_opt", "networks": 8, "nu_range": [-0.6, 0.6]}'"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="densim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"densim {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    networks = stages.add_parser("networks", help="jammed packings -> spring networks tuned in Poisson ratio", description="The networks stage.")
    actions = networks.add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = actions.add_parser("generate", help="make one network of a dataset", description="Make network INDEX of a dataset and write it as netCDF.", epilog=SPEC_HELP)
    generate.add_argument("--dataset", required=True, help="dataset name (recorded in the file and in error messages)")
    generate.add_argument("--spec", required=True, help="dataset spec (see below)")
    generate.add_argument("--index", required=True, type=int, help="network index, 0 <= INDEX < networks")
    generate.add_argument("-o", "--output", required=True, type=Path, help="netCDF file to write")
    generate.set_defaults(func=cmd_networks_generate)
    man = actions.add_parser("manifest", help="tabulate the networks of a dataset", description="Write the manifest CSV of a dataset's network files and print it.")
    man.add_argument("networks", nargs="+", type=Path, help="network netCDF files")
    man.add_argument("-o", "--output", required=True, type=Path, help="CSV file to write")
    man.set_defaults(func=cmd_networks_manifest)

    prov = stages.add_parser("provenance", help="show how an output file was made", description="Print the provenance attributes of a densim output.")
    prov.add_argument("file", type=Path)
    prov.set_defaults(func=cmd_provenance)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from densim.io import DensimFileError

    try:
        args.func(args)
    except DensimFileError as err:
        raise SystemExit(f"densim: {err}") from err


if __name__ == "__main__":
    main()
