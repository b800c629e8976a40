"""MedMNIST v2 2D datasets: bundled, cached or downloaded, always checksummed.

URLs, checksums, label names, tasks and licenses come from the ``medmnist`` package's
``INFO`` table, so they stay in step with the official release. Lookup order:

1. ``breastmnist`` at 28 px ships inside this package (works offline, see ``bundled/README.md``);
2. the cache folder: ``root``, else ``$AUTONAS_DATA``, else ``<user cache>/autonas/medmnist``;
3. the official URL, downloaded into the cache folder and verified by MD5.

A cached file is hashed once; a ``<file>.md5ok`` marker holding its MD5, size and mtime
then lets later loads skip re-hashing (224 px files are several GB).

Local files that are not the official release (a re-created subset, a synthetic file in the
official layout for offline tests) are used without the MD5 check only when asked for
explicitly: ``verify=False``, or ``AUTONAS_VERIFY_MD5=0`` in the environment (which also
reaches ``autonas run --dataset FLAG``). Such a file's own MD5 is recorded in ``info`` and
its images must still be ``size`` pixels square. Downloads are always verified.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from autonas.data.dataset import ImageData, _from_npz
from autonas.data.download import download as _fetch
from autonas.data.download import md5sum
from autonas.errors import DataError

SIZES: tuple[int, ...] = (28, 64, 128, 224)

HOMEPAGE = "https://medmnist.com/"
CITATION = (
    "Jiancheng Yang, Rui Shi, Donglai Wei, Zequan Liu, Lin Zhao, Bilian Ke, Hanspeter "
    "Pfister, Bingbing Ni. MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D "
    "biomedical image classification. Scientific Data 10, 41 (2023). "
    "doi:10.1038/s41597-022-01721-8"
)

# Augmentation policy (ours, not MedMNIST metadata): (hflip, vflip) that preserve the label.
FLIPS: dict[str, tuple[bool, bool]] = {
    # Chest X-rays: the heart sits on the left; mirrored radiographs do not occur.
    "pneumoniamnist": (False, False),
    "chestmnist": (False, False),
    # Abdominal CT: labels name left/right organs (kidney-left, femur-right, ...).
    "organamnist": (False, False),
    "organcmnist": (False, False),
    "organsmnist": (False, False),
    # Microscopy and dermoscopy: no canonical orientation, any flip is a valid image.
    "pathmnist": (True, True),
    "bloodmnist": (True, True),
    "tissuemnist": (True, True),
    "dermamnist": (True, True),
    # Ultrasound, fundus, OCT: mirroring left/right is plausible, upside-down is not.
    "breastmnist": (True, False),
    "retinamnist": (True, False),
    "octmnist": (True, False),
}
DEFAULT_FLIPS = (False, False)  # flags added by future medmnist releases: be conservative

_BUNDLED = {("breastmnist", 28): "breastmnist.npz"}
VERIFY_ENV = "AUTONAS_VERIFY_MD5"
_OFF = {"0", "false", "no", "off"}
_MARKER_SUFFIX = ".md5ok"


def _info() -> dict[str, dict[str, Any]]:
    from medmnist import INFO  # imported lazily: importing medmnist is slow

    return INFO


def medmnist_flags() -> list[str]:
    """The 2D MedMNIST flags this module can load (3D volumes are out of scope)."""
    return [f for f in _info() if not f.endswith("3d")]


def _check(flag: str, size: int) -> str:
    flag = str(flag).strip().lower()
    valid = medmnist_flags()
    if flag not in valid:
        extra = " 3D MedMNIST sets are not supported." if flag.endswith("3d") else ""
        raise DataError(
            f"unknown MedMNIST flag {flag!r}.{extra} Valid flags: {', '.join(valid)} "
            "(or pass the path of an .npz file)."
        )
    if size not in SIZES:
        raise DataError(
            f"MedMNIST size {size!r} is not available; choose one of {', '.join(map(str, SIZES))}."
        )
    task = _info()[flag]["task"]
    if "multi-label" in task:
        raise DataError(
            f"{flag}: multi-label tasks are not supported yet ({flag} is {task!r}). "
            "Choose a binary-class or multi-class set, e.g. pneumoniamnist."
        )
    return flag


def _source(flag: str, size: int) -> tuple[str, str, str]:
    """(url, md5, file name) of one official file, named as the medmnist package names it."""
    meta = _info()[flag]
    suffix = "" if size == 28 else f"_{size}"
    return meta[f"url{suffix}"], meta[f"MD5{suffix}"], f"{flag}{suffix}.npz"


def cache_dir(root: str | Path | None = None) -> Path:
    """Where downloaded files live: explicit root, then $AUTONAS_DATA, then the user cache."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("AUTONAS_DATA")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("autonas")) / "medmnist"


def _marker(path: Path) -> Path:
    return path.with_name(path.name + _MARKER_SUFFIX)


def _stamp(path: Path, md5: str) -> dict[str, Any]:
    st = path.stat()
    return {"md5": md5.lower(), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _remember(path: Path, md5: str) -> None:
    with suppress(OSError):  # a read-only cache only costs a re-hash next time
        _marker(path).write_text(json.dumps(_stamp(path, md5)))


def _known_good(path: Path, md5: str) -> bool:
    try:
        return json.loads(_marker(path).read_text()) == _stamp(path, md5)
    except (OSError, ValueError):
        return False


def _verify_cached(path: Path, md5: str, url: str) -> None:
    if _known_good(path, md5):
        return
    actual = md5sum(path)
    if actual.lower() == md5.lower():
        _remember(path, md5)
        return
    with suppress(OSError):
        _marker(path).unlink()
    # Not deleted: a file already in the cache may be the user's own copy (e.g. MedMNIST v1).
    raise DataError(
        f"MD5 mismatch for {path.name} in {path.parent}: expected {md5}, got {actual}. "
        f"The file is corrupt or from another MedMNIST version: delete it and run again to "
        f"re-download it from {url}."
    )


def _verify_wanted(verify: bool | None) -> bool:
    """An explicit argument wins; else ``$AUTONAS_VERIFY_MD5`` (0/false/no/off turn it off)."""
    if verify is not None:
        return bool(verify)
    return os.environ.get(VERIFY_ENV, "1").strip().lower() not in _OFF


def _locate(
    flag: str, size: int, root: str | Path | None, download: bool, verify: bool = True
) -> Path:
    url, md5, filename = _source(flag, size)
    folder = cache_dir(root)
    path = folder / filename
    if path.is_file():
        if verify:
            _verify_cached(path, md5, url)
        return path
    if not download:
        raise DataError(
            f"{filename} is not in {folder} and downloading is off. Download it from {url} "
            f"(MD5 {md5}) and put it in that folder as {filename}, or allow downloading."
        )
    _fetch(url, path, md5)
    _remember(path, md5)
    return path


def _check_side(data: ImageData, size: int, path: Path) -> None:
    """A file named for one size but holding another would silently train at the wrong size."""
    side = tuple(data.train_x.shape[-2:])
    if side != (size, size):
        raise DataError(
            f"{path}: images are {side[0]}x{side[1]} px but the file name is for {size} px. "
            f"Put the {size} px file there, or pass the size the file has (--size {side[0]})."
        )


def load_medmnist(
    flag: str,
    size: int = 28,
    root: str | Path | None = None,
    download: bool = True,
    verify: bool | None = None,
) -> ImageData:
    """Load one 2D MedMNIST set as validated ImageData with credit and license in ``info``.

    ``verify=False`` (or ``AUTONAS_VERIFY_MD5=0``) uses a local file without the MD5 check.
    """
    flag = _check(flag, size)
    verify = _verify_wanted(verify)
    meta = _info()[flag]
    url, md5, filename = _source(flag, size)
    labels = meta["label"]
    class_names = [labels[k] for k in sorted(labels, key=int)]
    hflip, vflip = FLIPS.get(flag, DEFAULT_FLIPS)
    info: dict[str, Any] = {
        "source": "medmnist",
        "flag": flag,
        "size": size,
        "license": meta.get("license"),
        "description": meta.get("description"),
        "url": url,
        "md5": md5,
        "file": filename,
        "citation": CITATION,
        "homepage": HOMEPAGE,
        "medmnist_task": meta["task"],
    }
    if meta["task"] == "ordinal-regression":
        info["note"] = (
            f"{flag} is an ordinal-regression task in MedMNIST; autonas treats its "
            f"{len(class_names)} grades as a multi-class problem (order is ignored)."
        )
    name = flag if size == 28 else f"{flag}_{size}"
    task = "binary-class" if len(class_names) == 2 else "multi-class"
    kwargs = {"class_names": class_names, "task": task, "hflip": hflip, "vflip": vflip}

    bundled = _BUNDLED.get((flag, size))
    if bundled is not None:
        resource = files("autonas.data") / "bundled" / bundled
        if resource.is_file():
            info["path"] = f"bundled:{bundled}"
            with as_file(resource) as p:
                return _from_npz(Path(p), name, info=info, **kwargs)

    path = _locate(flag, size, root, download, verify)
    info["path"] = str(path)
    if not verify:
        info["md5"] = md5sum(path)
        info["md5_verified"] = False
    data = _from_npz(path, name, info=info, **kwargs)
    if not verify:  # an official file is the right size by its checksum
        _check_side(data, size, path)
    return data
