"""LAMMPS text files: data files (atoms, masses, harmonic bonds) and text dumps (frames), read and written in full
precision, so that trajectories simulated elsewhere become densim datasets (:func:`densim.trajectories.import_trajectory`).

The readers are the package's own. ASE 3.29 reads both formats but drops a dump's image flags, gives scaled
coordinates without the box origin while it gives unscaled ones with it (so the two cannot be told apart after
reading), ignores a data file's ``Bond Coeffs`` and says neither line nor frame when a file is cut off; MDAnalysis
reads coordinates as float32, which loses the per-frame displacements (about 1e-5 of the positions). Both formats
are plain text with a fixed grammar (https://docs.lammps.org/read_data.html, https://docs.lammps.org/dump.html), so a
reader that checks every line costs less than working around either.

Every error names the file and the line (data files) or the frame (dumps) at fault.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densim.io import DensimFileError, atomic_path

#: Columns of an ``Atoms`` line per atom style, before the optional three image flags.
ATOM_COLUMNS = {"bond": ("id", "mol", "type", "x", "y", "z"), "angle": ("id", "mol", "type", "x", "y", "z"),
                "molecular": ("id", "mol", "type", "x", "y", "z"), "full": ("id", "mol", "type", "q", "x", "y", "z")}
#: Header keywords of a data file this reader uses (``N atoms``, ``xlo xhi``, ...).
_HEADER = re.compile(r"^\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)?\s*(atoms|bonds|atom types|bond types|xlo xhi|ylo yhi|zlo zhi)\s*$")
_SECTION = re.compile(r"^\s*(Atoms|Velocities|Masses|Bonds|Bond Coeffs|Angles|Dihedrals|Impropers|Pair Coeffs|PairIJ Coeffs|"
                      r"Angle Coeffs|Dihedral Coeffs|Improper Coeffs|Atom Type Labels|Bond Type Labels)\b\s*(#\s*(.*?))?\s*$")
#: A section comment that names a style: one word of LAMMPS style characters (``# full``, ``# harmonic``). Anything else
#: after the ``#`` (a generator's list of column names, say) names no style; LAMMPS reads such a file with a warning.
_STYLE = re.compile(r"^[a-z][a-z0-9_/]*$")


#: LAMMPS unit systems (https://docs.lammps.org/units.html) -> (``sqrt(M L^2 / E)`` in the system's time unit, the
#: Boltzmann constant in its energy unit per kelvin, its time unit). densim's time unit of an imported run is
#: ``tau = sqrt(m L^2 / E)`` with ``m`` the node mass: the node mass becomes 1 and lengths, energies and spring
#: constants keep the file's units, so ``t0 = sqrt(m / k) = tau / sqrt(k)`` as in densim's own runs (unit mass, ``k ~ 1``).
#: metal: g/mol, Angstrom, eV, ps (1 g/mol A^2 / eV = 1.0364e-4 ps^2); real: g/mol, Angstrom, kcal/mol, fs.
UNITS: dict[str, tuple[float, float, str]] = {
    "lj": (1.0, 1.0, "tau"),
    "metal": (math.sqrt(1.66053906660e-27 * 1e-20 / 1.602176634e-19) * 1e12, 8.617333262e-5, "ps"),
    "real": (math.sqrt(1.66053906660e-27 * 1e-20 / (4184.0 / 6.02214076e23)) * 1e15, 1.987204259e-3, "fs"),
    "si": (1.0, 1.380649e-23, "s"),
    "cgs": (1.0, 1.380649e-16, "s"),
}


def time_unit(units: str, mass: float) -> float:
    """densim's time unit ``tau = sqrt(m L^2 / E)`` of a run in LAMMPS ``units`` with node mass ``mass`` (the data
    file's), in the run's own time unit (ps for metal: 1.018 ps for m = 1e4 g/mol)."""
    if units not in UNITS:
        raise ValueError(f"units {units!r}: densim translates {sorted(UNITS)}")
    return UNITS[units][0] * math.sqrt(mass)


@dataclass(frozen=True)
class DataFile:
    """A LAMMPS data file of a 2D bond network, atoms sorted by id.

    Attributes
    ----------
    ids : ndarray (N,)
        Atom ids, ascending.
    positions : ndarray (N, 2)
        Positions with the image flags applied (``x + ix * Lx``), float64.
    lo, box : ndarray (2,)
        Box origin ``(xlo, ylo)`` and lengths ``(Lx, Ly)``.
    masses : ndarray (N,)
        Mass of each atom (from its type's ``Masses`` line).
    bonds : ndarray (Nb, 2)
        Row indices (into ``ids``) of each bond's atoms.
    bond_types : ndarray (Nb,)
        Each bond's type.
    coefficients : dict
        Bond type -> ``(K, r0)`` of ``bond_style harmonic`` (energy ``K (r - r0)^2``).
    notes : tuple of str
        What the reader read other than as written, where LAMMPS would too (a section comment that names no style),
        each naming the file and line: for the log.
    """

    ids: np.ndarray
    positions: np.ndarray
    lo: np.ndarray
    box: np.ndarray
    masses: np.ndarray
    bonds: np.ndarray
    bond_types: np.ndarray
    coefficients: dict[int, tuple[float, float]]
    notes: tuple[str, ...] = ()

    @property
    def stiffness(self) -> np.ndarray:
        """Spring constant ``k = 2 K`` of each bond (densim's energy is ``k/2 (r - l0)^2``)."""
        return np.array([2.0 * self.coefficients[t][0] for t in self.bond_types])

    @property
    def rest_lengths(self) -> np.ndarray:
        return np.array([self.coefficients[t][1] for t in self.bond_types])


def _numbers(path, number, fields, count, kind=float):
    if len(fields) < count:
        raise DensimFileError(f"{path}:{number}: expected {count} values, found {len(fields)}")
    try:
        return [kind(value) for value in fields[:count]]
    except ValueError as err:
        raise DensimFileError(f"{path}:{number}: not a number ({err})") from None


def read_data(path: str | Path) -> DataFile:
    """Read a LAMMPS data file of a 2D network of harmonic bonds (atom style bond, angle, molecular or full, named by
    the ``Atoms # style`` comment LAMMPS writes, else told by the number of columns).

    Raises
    ------
    DensimFileError
        Naming the file and line: a missing file, header or section; a section cut off; a line with too few or
        non-numeric values; a non-harmonic ``Bond Coeffs`` style; bond types without coefficients; a bond between
        unknown atoms; atoms of unequal masses or off the plane z = 0.
    """
    path = Path(path)
    if not path.is_file():
        raise DensimFileError(f"{path}: no such file")
    lines = path.read_text().splitlines()
    header: dict[str, list[float]] = {}
    sections: dict[str, tuple[int, str | None]] = {}  # name -> (line index of its title, style comment)
    for index, line in enumerate(lines[1:], start=1):  # the first line is a comment
        text = line.split("#", 1)[0]
        match = _SECTION.match(line)
        if match:
            sections[match.group(1)] = (index, match.group(3))
        elif not sections and text.strip():
            found = _HEADER.match(text)
            if found:
                header[found.group(3)] = [float(v) for v in (found.group(1), found.group(2)) if v is not None]
    for key in ("atoms", "xlo xhi", "ylo yhi"):
        if key not in header:
            raise DensimFileError(f"{path}: no '{key}' line in the header")
    natoms, nbonds = int(header["atoms"][0]), int(header.get("bonds", [0])[0])
    if nbonds == 0 or "Bonds" not in sections:
        raise DensimFileError(f"{path}: no Bonds section (header: {nbonds} bonds): densim imports bond networks")
    for name in ("Atoms", "Masses", "Bond Coeffs"):
        if name not in sections:
            raise DensimFileError(f"{path}: no {name} section" + (": bond types without coefficients" if name == "Bond Coeffs" else ""))

    def rows(name: str, count: int | None):
        """The section's ``count`` data lines (all up to the next section when None) as (line number, fields), blank
        lines and comments skipped."""
        start = sections[name][0]
        found = []
        for index in range(start + 1, len(lines)):
            text = lines[index].split("#", 1)[0].strip()
            if _SECTION.match(lines[index]):
                break
            if text:
                found.append((index + 1, text.split()))
            if len(found) == count:
                return found
        if count is None:
            return found
        raise DensimFileError(f"{path}:{start + 1}: the {name} section has {len(found)} lines, the header says {count}")

    notes = []
    style = _style(sections, "Atoms")
    atom_rows = rows("Atoms", natoms)
    if style is None:
        style = "full" if len(atom_rows[0][1]) in (7, 10) else "bond"
        notes.append(f"{path}:{sections['Atoms'][0] + 1}: the Atoms section names no atom style{_comment(sections, 'Atoms')}: "
                     f"read as {style} from its {len(atom_rows[0][1])} columns")
    if style not in ATOM_COLUMNS:
        raise DensimFileError(f"{path}:{sections['Atoms'][0] + 1}: atom style {style!r}; densim reads {sorted(ATOM_COLUMNS)}")
    columns = ATOM_COLUMNS[style]
    x_at = columns.index("x")
    ids, types, xyz, images = [], [], [], []
    for number, fields in atom_rows:
        if len(fields) not in (len(columns), len(columns) + 3):
            raise DensimFileError(f"{path}:{number}: {len(fields)} values in an Atoms line of style {style} "
                                  f"(expected {len(columns)}, or {len(columns) + 3} with image flags)")
        ids.append(_numbers(path, number, fields, 1, int)[0])
        types.append(_numbers(path, number, fields[columns.index("type"):], 1, int)[0])
        xyz.append(_numbers(path, number, fields[x_at:], 3))
        images.append(_numbers(path, number, fields[len(columns):], 3, int) if len(fields) > len(columns) else [0, 0, 0])
    lo = np.array([header["xlo xhi"][0], header["ylo yhi"][0]])
    box = np.array([header["xlo xhi"][1], header["ylo yhi"][1]]) - lo
    order = np.argsort(ids, kind="stable")
    ids, types = np.array(ids)[order], np.array(types)[order]
    xyz, images = np.array(xyz)[order], np.array(images)[order]
    if len(set(ids.tolist())) != len(ids):
        raise DensimFileError(f"{path}: repeated atom ids in the Atoms section")
    if np.any(xyz[:, 2] != 0.0):
        raise DensimFileError(f"{path}: atoms off the plane z = 0: densim imports 2D networks")
    masses_by_type = {t: m for t, m in (_numbers(path, n, f, 2) for n, f in rows("Masses", len({*types.tolist()})))}
    missing = sorted({int(t) for t in types} - {int(t) for t in masses_by_type})
    if missing:
        raise DensimFileError(f"{path}:{sections['Masses'][0] + 1}: no mass for atom types {missing}")
    masses = np.array([masses_by_type[t] for t in types])
    bond_rows = rows("Bonds", nbonds)
    index_of = {int(atom): row for row, atom in enumerate(ids)}
    bonds, bond_types = [], []
    for number, fields in bond_rows:
        _, kind, first, second = _numbers(path, number, fields, 4, int)
        if first not in index_of or second not in index_of:
            raise DensimFileError(f"{path}:{number}: bond between atoms {first} and {second}, not both in the Atoms section")
        bonds.append(sorted((index_of[first], index_of[second])))
        bond_types.append(kind)
    coeff_style = _style(sections, "Bond Coeffs")
    if coeff_style not in (None, "harmonic"):
        raise DensimFileError(f"{path}:{sections['Bond Coeffs'][0] + 1}: bond style {coeff_style!r}; densim imports harmonic bonds")
    coefficients = {}
    for number, fields in rows("Bond Coeffs", None):
        kind, stiffness, rest = _numbers(path, number, fields, 3)
        coefficients[int(kind)] = (stiffness, rest)
    without = sorted(set(bond_types) - set(coefficients))
    if without:
        raise DensimFileError(f"{path}:{sections['Bond Coeffs'][0] + 1}: bond types without coefficients: {without}")
    if coeff_style is None:
        notes.append(f"{path}:{sections['Bond Coeffs'][0] + 1}: the Bond Coeffs section names no bond style"
                     f"{_comment(sections, 'Bond Coeffs')}: read as harmonic (K, r0)")
    return DataFile(ids=ids, positions=xyz[:, :2] + images[:, :2] * box, lo=lo, box=box, masses=masses,
                    bonds=np.array(bonds, dtype=np.int64), bond_types=np.array(bond_types), coefficients=coefficients,
                    notes=tuple(notes))


def _style(sections: dict, name: str) -> str | None:
    """The style a section's comment names (``Atoms # full``), or None where it names none: a comment that is not a
    style (``Atoms # ['atomID', ...]``) is ignored, as LAMMPS ignores it with a warning."""
    comment = sections[name][1]
    return comment if comment and _STYLE.match(comment) else None


def _comment(sections: dict, name: str) -> str:
    comment = sections[name][1]
    return f" (its comment {comment[:48]!r} is not a style; LAMMPS warns and reads on)" if comment else ""


@dataclass(frozen=True)
class Dump:
    """The frames of a LAMMPS text dump, atoms sorted by id.

    Attributes
    ----------
    timesteps : ndarray (F,)
        The MD step of each frame.
    ids : ndarray (N,)
        Atom ids, ascending (the same in every frame).
    positions : ndarray (F, N, 2)
        Positions, float64: unwrapped where the dump has unwrapped coordinates or image flags, as written otherwise
        (``wrapped`` says which).
    lo, box : ndarray (F, 2)
        Box origin and lengths of each frame.
    velocities : ndarray (F, N, 2) or None
        Velocities where the dump has ``vx vy``.
    wrapped : bool
        Whether positions are wrapped into each frame's box (coordinates ``x`` or ``xs`` without image flags).
    """

    timesteps: np.ndarray
    ids: np.ndarray
    positions: np.ndarray
    lo: np.ndarray
    box: np.ndarray
    velocities: np.ndarray | None
    wrapped: bool


#: Coordinate columns a dump may hold: (x, y) names -> (scaled, unwrapped).
COORDINATES = {("xu", "yu"): (False, True), ("x", "y"): (False, False), ("xsu", "ysu"): (True, True), ("xs", "ys"): (True, False)}


def read_dump(path: str | Path) -> Dump:
    """Read a LAMMPS text dump (``dump custom`` or ``dump atom``) of a 2D periodic box: atom ids, coordinates scaled or
    not, wrapped or not (image flags ``ix iy`` are applied), optionally velocities, atoms in any order.

    Raises
    ------
    DensimFileError
        Naming the file, the frame and the line: a missing file, no frames, a frame cut off mid-way, a line that is
        not a number, an atom count that changes between frames, atom ids that differ between frames, a box that
        is not periodic in x and y, a triclinic box, no atom ids or no coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise DensimFileError(f"{path}: no such file")
    with open(path) as handle:
        lines = handle.read().splitlines()
    frames, line = [], 0

    def expect(item: str, frame: int) -> str:
        nonlocal line
        if line >= len(lines):
            raise DensimFileError(f"{path}: frame {frame} is cut off at the end of the file (line {line + 1}): no {item} line")
        text = lines[line]
        if not text.startswith(f"ITEM: {item}"):
            raise DensimFileError(f"{path}:{line + 1}: frame {frame}: expected 'ITEM: {item}', found {text[:60]!r}")
        line += 1
        return text

    def values(count: int, frame: int, what: str) -> list[str]:
        nonlocal line
        if line + count > len(lines):
            raise DensimFileError(f"{path}: frame {frame} is cut off in its {what} ({len(lines) - line} of {count} lines, at the "
                                  f"end of the file, line {len(lines)})")
        block = lines[line:line + count]
        line += count
        return block

    while line < len(lines):
        frame = len(frames)
        expect("TIMESTEP", frame)
        (step,) = _numbers(path, line + 1, values(1, frame, "timestep")[0].split(), 1, int)
        expect("NUMBER OF ATOMS", frame)
        (natoms,) = _numbers(path, line + 1, values(1, frame, "atom count")[0].split(), 1, int)
        if frames and natoms != frames[0][1]:
            raise DensimFileError(f"{path}:{line}: frame {frame} (step {step}) has {natoms} atoms, frame 0 has {frames[0][1]}")
        bounds = expect("BOX BOUNDS", frame).split()[3:]
        if bounds and bounds[0] in ("xy", "xz", "yz"):
            raise DensimFileError(f"{path}:{line}: frame {frame} has a triclinic box; densim imports rectangular boxes")
        if bounds[:2] != ["pp", "pp"]:
            raise DensimFileError(f"{path}:{line}: frame {frame} has a box with boundaries {' '.join(bounds) or '(none given)'}; "
                                  "densim imports boxes periodic in x and y ('pp pp')")
        start = line
        box_lines = values(3, frame, "box bounds")
        extent = np.array([_numbers(path, start + 1 + i, box_lines[i].split(), 2) for i in range(2)])
        columns = expect("ATOMS", frame).split()[2:]
        start = line
        rows = values(natoms, frame, "atoms")
        table = []
        for offset, text in enumerate(rows):
            fields = text.split()
            if len(fields) != len(columns):
                raise DensimFileError(f"{path}:{start + offset + 1}: frame {frame} (step {step}): {len(fields)} values, the ATOMS "
                                      f"line names {len(columns)}")
            table.append(fields)
        try:
            data = np.array(table, dtype=np.float64).reshape(natoms, len(columns))
        except ValueError as err:
            raise DensimFileError(f"{path}: frame {frame} (step {step}): a value that is not a number ({err})") from None
        frames.append((step, natoms, extent, columns, data))
    if not frames:
        raise DensimFileError(f"{path}: no frames (an empty dump)")

    columns = frames[0][3]
    if "id" not in columns:
        raise DensimFileError(f"{path}: frame 0 has no 'id' column: atoms cannot be matched between frames")
    names = next((pair for pair in COORDINATES if set(pair) <= set(columns)), None)
    if names is None:
        raise DensimFileError(f"{path}: frame 0 has no coordinates (one of {[' '.join(p) for p in COORDINATES]})")
    scaled, unwrapped = COORDINATES[names]
    images = not unwrapped and {"ix", "iy"} <= set(columns)
    timesteps, positions, lo, box, velocities = [], [], [], [], []
    ids = None
    for frame, (step, natoms, extent, frame_columns, data) in enumerate(frames):
        if frame_columns != columns:
            raise DensimFileError(f"{path}: frame {frame} (step {step}) has columns {frame_columns}, frame 0 has {columns}")
        data = data[np.argsort(data[:, columns.index("id")], kind="stable")]
        frame_ids = data[:, columns.index("id")].astype(np.int64)
        if ids is None:
            ids = frame_ids
        elif not np.array_equal(frame_ids, ids):
            raise DensimFileError(f"{path}: frame {frame} (step {step}) holds other atom ids than frame 0")
        origin, lengths = extent[:, 0], extent[:, 1] - extent[:, 0]
        xy = data[:, [columns.index(names[0]), columns.index(names[1])]]
        xy = origin + xy * lengths if scaled else xy
        if images:
            xy = xy + data[:, [columns.index("ix"), columns.index("iy")]] * lengths
        timesteps.append(step)
        positions.append(xy)
        lo.append(origin)
        box.append(lengths)
        if {"vx", "vy"} <= set(columns):
            velocities.append(data[:, [columns.index("vx"), columns.index("vy")]])
    return Dump(timesteps=np.array(timesteps), ids=ids, positions=np.array(positions), lo=np.array(lo), box=np.array(box),
                velocities=np.array(velocities) if velocities else None, wrapped=not (unwrapped or images))


def write_data(path: str | Path, positions: np.ndarray, box: np.ndarray, bonds: np.ndarray, stiffness: np.ndarray,
               rest_lengths: np.ndarray, mass: float, ids: np.ndarray | None = None, order: np.ndarray | None = None,
               column_comments: bool = False) -> Path:
    """Write a network as a LAMMPS data file (``bond_style harmonic`` with ``K = k / 2``, one bond type per bond), every
    float in full precision (``%.17g``); ``ids``: the atom id of each node (default 1..N), ``order``: the order the
    atoms are listed in (default by node).

    By default the sections name their styles (``Atoms # bond``, ``Bond Coeffs # harmonic``), as LAMMPS's
    ``write_data`` does. ``column_comments`` writes atom style full with the column names as each section's comment
    instead (``Atoms # ['atomID', 'moleculeID', 'atomType', 'charge', 'x', 'y', 'z']``), as some generators do: LAMMPS
    reads such files with a warning.
    """
    ids = np.arange(1, len(positions) + 1) if ids is None else np.asarray(ids)
    order = np.arange(len(positions)) if order is None else np.asarray(order)
    comments = ({"Masses": " # ['atom_id', 'mass']", "Bond Coeffs": " # ['bondID', 'bondCoeff', 'd']",
                 "Atoms": " # ['atomID', 'moleculeID', 'atomType', 'charge', 'x', 'y', 'z']", "Bonds": " # ['ID', 'type', 'atom1', 'atom2']"}
                if column_comments else {"Masses": "", "Bond Coeffs": " # harmonic", "Atoms": " # bond", "Bonds": ""})
    charge = " 0" if column_comments else ""
    lines = ["LAMMPS data file (densim, full precision)", "", f"{len(positions)} atoms", f"{len(bonds)} bonds", "1 atom types",
             f"{len(bonds)} bond types", "", f"0 {box[0]:.17g} xlo xhi", f"0 {box[1]:.17g} ylo yhi", "-0.5 0.5 zlo zhi", "",
             f"Masses{comments['Masses']}", "", f"1 {mass:.17g}", "", f"Bond Coeffs{comments['Bond Coeffs']}", ""]
    lines += [f"{b + 1} {k / 2:.17g} {r:.17g}" for b, (k, r) in enumerate(zip(stiffness, rest_lengths))]
    lines += ["", f"Atoms{comments['Atoms']}", ""]
    lines += [f"{ids[i]} 1 1{charge} {positions[i, 0]:.17g} {positions[i, 1]:.17g} 0" for i in order]
    lines += ["", f"Bonds{comments['Bonds']}", ""]
    lines += [f"{b + 1} {b + 1} {ids[i]} {ids[j]}" for b, (i, j) in enumerate(bonds)]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_dump(path: str | Path, timesteps, positions: np.ndarray, box: np.ndarray, lo: np.ndarray | None = None,
               coordinates: str = "xu yu", ids: np.ndarray | None = None, order: np.ndarray | None = None) -> Path:
    """Write frames as a LAMMPS text dump (``ITEM: ATOMS id type`` + ``coordinates``: ``xu yu``, ``x y ix iy``,
    ``x y``, ``xs ys`` or ``xsu ysu``), every float in full precision; ``lo``: each frame's box origin (default 0),
    ``ids``: each node's atom id (default 1..N), ``order``: the order the atoms are listed in (default by node)."""
    frames, natoms = positions.shape[:2]
    lo = np.zeros((frames, 2)) if lo is None else np.asarray(lo)
    ids = np.arange(1, natoms + 1) if ids is None else np.asarray(ids)
    order = np.arange(natoms) if order is None else np.asarray(order)
    names = coordinates.split()
    lines = []
    for t in range(frames):
        image = np.floor((positions[t] - lo[t]) / box[t])
        wrapped = positions[t] - image * box[t]
        values = {"xu yu": positions[t], "x y ix iy": np.column_stack([wrapped, image]), "x y": wrapped,
                  "xs ys": (wrapped - lo[t]) / box[t], "xsu ysu": (positions[t] - lo[t]) / box[t]}[coordinates]
        lines += ["ITEM: TIMESTEP", str(int(timesteps[t])), "ITEM: NUMBER OF ATOMS", str(natoms), "ITEM: BOX BOUNDS pp pp pp",
                  f"{lo[t, 0]:.17g} {lo[t, 0] + box[t, 0]:.17g}", f"{lo[t, 1]:.17g} {lo[t, 1] + box[t, 1]:.17g}", "-0.5 0.5",
                  f"ITEM: ATOMS id type {' '.join(names)}"]
        for i in order:
            row = values[i]
            text = " ".join(f"{int(v)}" if name.startswith("i") else f"{v:.17g}" for name, v in zip(names, row))
            lines.append(f"{ids[i]} 1 {text}")
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return Path(path)


def paired_files(dumps: str, data: str, exclude: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The (dump, data file) of each run: the files the glob patterns ``dumps`` and ``data`` match (relative to the
    working directory), each sorted by name and paired in that order; one data file serves every dump. The pairs
    whose dump matches a pattern of ``exclude`` are then left out.

    Raises
    ------
    ValueError
        Naming the pattern (``dumps: ...``, ``data: ...``): one that matches nothing, or data files that neither match
        the dumps one for one nor are a single file.
    """
    import glob

    found = {}
    for key, pattern in (("dumps", dumps), ("data", data)):
        found[key] = sorted(glob.glob(pattern))
        if not found[key]:
            raise ValueError(f"{key}: {pattern!r} matches no file")
    dump_files, data_files = found["dumps"], found["data"]
    if len(data_files) not in (1, len(dump_files)):
        raise ValueError(f"data: {len(data_files)} data files for {len(dump_files)} dumps (one for each, or one for all)")
    pairs = zip(dump_files, data_files * len(dump_files) if len(data_files) == 1 else data_files)
    return [(dump, data) for dump, data in pairs if not any(fnmatch.fnmatch(dump, pattern) for pattern in exclude)]


def read_thermo(path: str | Path) -> dict[str, np.ndarray]:
    """The thermo table of the last run in a LAMMPS log (``log.lammps``): column name -> values, one per thermo step.

    Raises
    ------
    DensimFileError
        Naming the file: a missing file, or no thermo table (a ``Step ...`` header followed by numbers).
    """
    path = Path(path)
    if not path.is_file():
        raise DensimFileError(f"{path}: no such file")
    table, columns = None, None
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split()
        if fields[:1] == ["Step"]:
            columns, rows = fields, []
            table = (columns, rows)
        elif columns is not None and len(fields) == len(columns):
            try:
                table[1].append([float(value) for value in fields])
            except ValueError:
                columns = None
        else:
            columns = None
    if table is None or not table[1]:
        raise DensimFileError(f"{path}: no thermo table (a 'Step ...' header followed by rows of numbers)")
    values = np.array(table[1])
    return {name: values[:, i] for i, name in enumerate(table[0])}

