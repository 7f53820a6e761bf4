"""Where the data files of `course_lib.datasets` are kept, and how they get there.

* `keras_datasets_dir()`: Keras's cache folder for data sets (`$KERAS_HOME/datasets`,
  by default `~/.keras/datasets`), where every download of the course goes: never next
  to the package, which may sit read-only in site-packages.
* `download(url, target)`: fetch a file into the cache, all or nothing: it is written
  under a temporary name and renamed when complete; a failed download leaves neither a
  partial file nor a folder it created.
* `link_files(source_dir, names, target_dir)`: make files of a Debian package visible
  in the cache (a symbolic link, or a copy where links are not allowed).
* `removing_new_empty_folders(folder)`: a context manager that, when its block fails,
  removes the folders up to `folder` that the block created and left empty (for a
  download made by Keras, which creates its folder first).

Nothing here imports Keras.
"""

import contextlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path


def keras_datasets_dir():
    """The folder where `keras.utils.get_file` caches Keras's data sets.

    The same rule as Keras (`keras.src.backend.config` and `keras.src.utils.file_utils`,
    which have no public accessor): keras home is `$KERAS_HOME` if set, else `~/.keras`
    (`/tmp/.keras` if the home folder is not writable); if keras home is not writable,
    `/tmp/.keras` (the system's temporary folder where there is no `/tmp`); then
    `datasets/`. Keras reads `$KERAS_HOME` when it is imported, so set it before
    importing Keras.

    Example:

    >>> keras_datasets_dir().name
    'datasets'
    """
    if "KERAS_HOME" in os.environ:
        keras_home = os.environ["KERAS_HOME"]
    else:
        base = os.path.expanduser("~")
        if not os.access(base, os.W_OK):
            base = "/tmp"
        keras_home = os.path.join(base, ".keras")
    keras_home = os.path.expanduser(keras_home)
    if not os.access(keras_home, os.W_OK):
        keras_home = fallback_keras_home()
    return Path(keras_home) / "datasets"


def fallback_keras_home():
    """Keras's keras home when the usual one is not writable: `/tmp/.keras`, or
    `.keras` in the system's temporary folder where there is no `/tmp` (Windows)."""
    return Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()) / ".keras"


def _missing_folders(folder):
    """`folder` and its ancestors that do not exist yet, deepest first."""
    missing = []
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


@contextlib.contextmanager
def removing_new_empty_folders(folder):
    """Run a block; if it raises, remove the folders up to `folder` that it created and
    left empty, then let the error through.

    Example:

    >>> base = Path(tempfile.mkdtemp())
    >>> try:
    ...     with removing_new_empty_folders(base / "a" / "b"):
    ...         (base / "a" / "b").mkdir(parents=True)
    ...         raise OSError("the download failed")
    ... except OSError:
    ...     pass
    >>> (base / "a").exists()
    False
    >>> shutil.rmtree(base)
    """
    missing = _missing_folders(folder)
    try:
        yield
    except BaseException:
        for path in missing:  # deepest first
            with contextlib.suppress(OSError):  # not empty, or gone already
                path.rmdir()
        raise


def download(url, target, check=None, timeout=60):
    """Download `url` to the file `target`, all or nothing.

    The whole file is read first, then `check(data)` (if given) may raise on wrong
    content; only then are the folders created and the file written, under a temporary
    name renamed to `target` when complete. A failure leaves no partial file and no
    folder created for it.

    Raises:
        OSError (`urllib.error.URLError` included) when the file cannot be fetched or
        written, or whatever `check` raises.

    Example:

    >>> base = Path(tempfile.mkdtemp())
    >>> _ = (base / "served.txt").write_text("hello")
    >>> download((base / "served.txt").as_uri(), base / "cache" / "copy.txt").read_text()
    'hello'
    >>> try:
    ...     download((base / "missing.txt").as_uri(), base / "other" / "copy.txt")
    ... except OSError:
    ...     print("failed;", "other" in [p.name for p in base.iterdir()])
    failed; False
    >>> shutil.rmtree(base)
    """
    target = Path(target)
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data = response.read()
    if check is not None:
        check(data)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    with removing_new_empty_folders(target.parent):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            partial.write_bytes(data)
            partial.replace(target)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
    return target


def link_files(source_dir, names, target_dir):
    """Make the files `names` of `source_dir` visible in `target_dir`.

    Each missing file becomes a symbolic link to its source (a dangling link is
    replaced), or a copy where symbolic links are not allowed (Windows without
    privileges). Files already in `target_dir` are never overwritten; names missing
    from `source_dir` are skipped, and nothing happens if `source_dir` does not exist.

    Example:

    >>> base = Path(tempfile.mkdtemp())
    >>> (base / "debian").mkdir()
    >>> _ = (base / "debian" / "a.gz").write_bytes(b"data")
    >>> link_files(base / "debian", ["a.gz", "b.gz"], base / "cache")
    >>> [p.name for p in (base / "cache").iterdir()], (base / "cache" / "a.gz").read_bytes()
    (['a.gz'], b'data')
    >>> shutil.rmtree(base)
    """
    source_dir, target_dir = Path(source_dir), Path(target_dir)
    if not source_dir.is_dir():
        return
    for name in names:
        source, target = source_dir / name, target_dir / name
        if not source.is_file() or target.exists():
            continue
        target_dir.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():  # a dangling link: replace it
            target.unlink()
        try:
            target.symlink_to(source)
        except FileExistsError:  # another process linked it first
            continue
        except OSError:  # no symbolic links here: copy
            partial = target.with_name(f"{name}.{os.getpid()}.part")
            shutil.copyfile(source, partial)
            partial.replace(target)
