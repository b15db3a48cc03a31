"""The workflow's software: `snakemake --lint`, and the conda environment of every rule (envs/densim.yaml and its
post-deploy script, which installs densim from the checkout).

conda cannot run here, so the environment is checked as far as it can be for real: its pins against
constraints.txt and pyproject.toml, the post-deploy script run in a fresh interpreter environment the way Snakemake
runs it, and Snakemake's own conda deployment (snakemake/deployment/conda.py, unchanged) driven end to end with a
stand-in `conda` whose `env create` links the pinned packages of the test interpreter instead of downloading them.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT, WORKFLOW, copy_checkout

ENV_FILE = ROOT / "envs/densim.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PACKAGE = ("pyproject.toml", "README.md", "src")


def post_deploy_file() -> Path:
    """Where Snakemake looks for the env's post-deploy script (its own rule: .yaml replaced by .post-deploy.sh)."""
    from snakemake.sourcecache import LocalSourceFile

    return Path(LocalSourceFile(str(ENV_FILE)).replace_suffix([".yaml", ".yml"], ".post-deploy.sh").get_path_or_uri(secret_free=True))


def env_spec() -> dict:
    return yaml.safe_load(ENV_FILE.read_text())


def pip_pins(spec: dict) -> dict[str, tuple[str, str]]:
    """canonical name -> (name, version) of the pip section, every entry an exact `name==version` pin."""
    (pip,) = [entry["pip"] for entry in spec["dependencies"] if isinstance(entry, dict)]
    pins = {}
    for line in pip:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        assert match, f"pip entry {line!r} of {ENV_FILE.name} is not an exact name==version pin"
        pins[canonicalize_name(match[1])] = (match[1], match[2])
    return pins


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def clean_environ(path_first: Path | None = None) -> dict:
    """This process's environment without this interpreter's venv and PYTHONPATH (which would mask what another
    environment imports), `path_first` first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX", "DENSIM_SOURCE")}
    here = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != here]
    env["PATH"] = os.pathsep.join(([str(path_first)] if path_first else []) + (path or ["/usr/bin", "/bin"]))
    return env


def bare_environment(prefix: Path) -> Path:
    """A fresh `python -m venv` (no pip, no system site-packages) that imports the packages this interpreter has,
    except densim: its site-packages gets a .pth naming a folder of links to every other entry of ours. (A venv made
    with --system-site-packages from our venv would see the base interpreter's site-packages, not our venv's.)"""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    deps = prefix / "linked-deps"
    deps.mkdir()
    for entry in ours.iterdir():
        if entry.suffix != ".pth" and not re.match(r"(__editable__[._])?densim\b", entry.name, re.IGNORECASE):
            (deps / entry.name).symlink_to(entry)
    python = prefix / "bin/python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, env=clean_environ()).stdout.strip()
    (Path(purelib) / "linked_deps.pth").write_text(f"{deps}\n")
    return python


def run_in(python: Path, code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, env=clean_environ(), **kwargs)


WHERE_DENSIM = "import densim, importlib.metadata as m; print(densim.__file__); print(m.distribution('densim')._path)"


# --------------------------------------------------------------------------------------------------------- lint


def test_lint_is_clean(tmp_path):
    result = subprocess.run([*SNAKEMAKE, "--lint"], cwd=copy_checkout(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


# ------------------------------------------------------------------------------------------- envs/densim.yaml


def test_env_pins_match_constraints():
    spec = env_spec()
    pins, pinned = pip_pins(spec), constraints()
    assert {name: version for name, (_, version) in pins.items()} == {name: pinned[name] for name in pins if name in pinned}
    assert set(pins) <= set(pinned), f"pinned in {ENV_FILE.name} but not in constraints.txt: {set(pins) - set(pinned)}"
    conda = [entry for entry in spec["dependencies"] if isinstance(entry, str)]
    assert "pip" in conda
    assert f"python={sys.version_info.major}.{sys.version_info.minor}" in conda


def test_env_pins_every_requirement_of_densim():
    """The post-deploy script installs densim with --no-deps: the env's pins must satisfy its requirements."""
    pins = pip_pins(env_spec())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"sys_platform": "linux"}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"densim requires {line!r}, not pinned in {ENV_FILE.name}"
        assert requirement.specifier.contains(pins[name][1], prereleases=True), f"{pins[name]} does not satisfy {line!r}"


def test_env_has_a_post_deploy_script_that_installs_densim():
    script = post_deploy_file()
    assert script == ROOT / "envs/densim.post-deploy.sh"
    assert script.exists(), f"{ENV_FILE.name} installs densim's dependencies but not densim: no {script.name}"
    assert "densim.post-deploy.sh" in ENV_FILE.read_text(), "the env file should say how densim gets installed"


def test_post_deploy_script_refuses_a_folder_that_is_not_a_checkout(tmp_path):
    script = post_deploy_file()
    assert script.exists()
    stub = tmp_path / "bin/python"  # whatever the script does, it must not reach a real interpreter here
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\necho python called >&2\nexit 99\n")
    stub.chmod(0o755)
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True, env=clean_environ(stub.parent))
    assert result.returncode == 1, result.stderr
    assert "not a densim checkout" in result.stderr and "DENSIM_SOURCE" in result.stderr
    assert "python called" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("located_by", ["working directory", "DENSIM_SOURCE"])
def test_post_deploy_script_installs_densim_from_the_checkout(tmp_path, located_by):
    """Run the script as Snakemake does (Env.execute_deployment_script): a copy of it beside the env, its shebang's
    interpreter, the env activated, from Snakemake's working directory: the checkout, or another folder with
    DENSIM_SOURCE naming the checkout (snakemake --directory elsewhere)."""
    script = post_deploy_file()
    assert script.exists(), f"no {script.name}"
    prefix = tmp_path / "conda/0123abcd"
    python = bare_environment(prefix)
    assert run_in(python, "import densim").returncode != 0, "densim must come from the script, not be there already"
    assert not (prefix / "bin/densim").exists()

    copy = Path(f"{prefix}.post-deploy.sh")
    shutil.copy(script, copy)
    first = script.read_text().splitlines()[0]
    interpreter = shlex.split(first[2:].strip()) if first.startswith("#!") else ["sh"]
    env = clean_environ(path_first=prefix / "bin") | {"CONDA_PREFIX": str(prefix)}
    cwd = ROOT
    if located_by == "DENSIM_SOURCE":
        env["DENSIM_SOURCE"], cwd = str(ROOT), tmp_path / "elsewhere"
        cwd.mkdir()
    result = subprocess.run([*interpreter, str(copy)], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr

    densim = prefix / "bin/densim"
    assert densim.exists() and shutil.which("densim", path=env["PATH"]) == str(densim)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert subprocess.run([densim, "--version"], capture_output=True, text=True, env=env, check=True).stdout.strip() == f"densim {version}"
    module, distribution = run_in(python, WHERE_DENSIM, check=True).stdout.split()
    assert Path(module) == ROOT / "src/densim/__init__.py"  # editable: the checkout's code, not a copy
    assert Path(distribution).is_relative_to(prefix)  # installed into the env, not seen through ours


FAKE_CONDA = '''#!{python}
"""Stand-in for conda: answers Snakemake's checks; `env create` makes a venv that links the test interpreter's
packages after checking that they are the env file's pins (conda would download exactly those)."""
import importlib.metadata, json, re, subprocess, sys
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

sys.path.insert(0, {root!r})
from tests.test_environment import bare_environment, pip_pins

here = Path(__file__).resolve().parents[1]
args = sys.argv[1:]
with open(here / "calls.log", "a") as log:
    print(json.dumps(args), file=log)
if args == ["info", "--json"]:
    print(json.dumps({{"conda_prefix": str(here), "platform": "linux-64"}}))
elif args == ["--version"]:
    print("conda 25.5.1")
elif args[:3] == ["config", "--get", "channel_priority"]:
    print(json.dumps({{"get": {{"channel_priority": "strict"}}}}))
elif args[:2] == ["env", "create"]:
    spec = yaml.safe_load(Path(args[args.index("--file") + 1]).read_text())
    for name, version in pip_pins(spec).values():
        have = importlib.metadata.version(name)
        if not SpecifierSet(f"=={{version}}").contains(have):  # as pip: ==2.13.0 takes 2.13.0+cpu
            sys.exit(f"fake conda: {{name}}=={{version}} wanted, the test interpreter has {{have}}")
    bare_environment(Path(args[args.index("--prefix") + 1]))
elif args[0] == "clean":  # Snakemake's default --conda-cleanup-pkgs: nothing downloaded, nothing to clean
    pass
else:
    sys.exit(f"fake conda: unexpected call {{args}}")
'''

ACTIVATE = '''# sourced by Snakemake as `source CONDA/bin/activate ENV`
export CONDA_PREFIX="$1"
export PATH="$1/bin:$PATH"
'''


@pytest.mark.slow
def test_snakemake_deploys_the_env_and_its_jobs_run_densim(tmp_path):
    """Snakemake's own conda deployment, with a stand-in conda: from a checkout (workflow and package), a job of
    the `network` rule runs with only the env's bin on PATH for densim."""
    fake = tmp_path / "fakeconda"
    (fake / "bin").mkdir(parents=True)
    conda = fake / "bin/conda"
    conda.write_text(FAKE_CONDA.format(python=sys.executable, root=str(ROOT)))
    conda.chmod(0o755)
    (fake / "bin/activate").write_text(ACTIVATE)
    (tmp_path / "checkout").mkdir()
    checkout = copy_checkout(tmp_path / "checkout", WORKFLOW + PACKAGE)

    target = "results/networks/node_opt/0000.nc"
    env = clean_environ(path_first=fake / "bin")
    assert shutil.which("densim", path=env["PATH"]) is None
    if "PYTHONPATH" in os.environ:  # Snakemake itself imports densim as this process does (jobs and the script drop it)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    result = subprocess.run(
        [*SNAKEMAKE, target, "--cores", "1", "--sdm", "conda", "--configfile", "workflow/presets/smoke.yaml"],
        cwd=checkout, capture_output=True, text=True, env=env, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (checkout / target).exists()
    assert "Running post-deploy script" in result.stderr

    # conda was handed Snakemake's copy of the env file, not envs/densim.yaml
    calls = [json.loads(line) for line in (fake / "calls.log").read_text().splitlines()]
    (create,) = [call for call in calls if call[:2] == ["env", "create"]]
    copied = Path(create[create.index("--file") + 1])
    prefix = Path(create[create.index("--prefix") + 1])
    assert copied.parent == checkout / ".snakemake/conda" and copied.read_text() == ENV_FILE.read_text()
    assert Path(f"{prefix}.post-deploy.sh").exists()
    module, distribution = run_in(prefix / "bin/python", WHERE_DENSIM, check=True).stdout.split()
    assert Path(module) == checkout / "src/densim/__init__.py"
    assert Path(distribution).is_relative_to(prefix)


def test_the_data_stages_do_not_load_torch():
    """The network, trajectory, spectra and split stages' modules (and the CLI, before it dispatches) leave torch
    unloaded: each of their hundreds of short jobs would otherwise pay its import (about 2 s of CPU) for nothing.
    NODE-OPT's differentiable route and a rollout's box import it where they run."""
    code = ("import sys, densim.cli, densim.networks, densim.trajectories, densim.spectra, densim.splits; "
            "print(sorted(name for name in sys.modules if name == 'torch' or name.startswith('torch.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
