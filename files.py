"""Files on disk, written so that nothing is ever half-written: atomic writes, hashes,
downloads that are checked before they take their final name, and the generated blocks of
the docs.

    with atomic_write("log.npz") as f: np.savez(f, ...)    # readers see the old file or the new
    download(url, dest, check=lambda part: ...)             # dest is whole and checked, or absent
    replace_block("README.md", "findings", text)            # rewrite one generated block

Every file of the project that writes something goes through atomic_write.
"""
import contextlib
import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


class DownloadError(OSError):
    """A download that failed; the message says where to put the file by hand."""


@contextlib.contextmanager
def atomic_write(path, mode="wb", check=None):
    """with atomic_write(path) as f: write to f. The data goes to a temporary file beside
    `path` whose name is unique to this process (mkstemp), so jobs of an array or hosts on
    a shared file system never write into each other's file; check(temporary path), if
    given, may raise to reject it; then it is renamed onto `path` in one step. A reader sees
    the old file or the new one, never half of one; on any error the temporary is removed.
    When two jobs write the same cache, the last rename wins and both files are whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as file:
            yield file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide shared caches from others
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_hash(path, algorithm="sha256"):
    """Hex digest of a file's bytes, read in chunks."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, algorithm).hexdigest()


def download(url, dest, check=None):
    """Download url to dest with a progress line on stderr. check(path) may raise to reject
    the file before it takes its final name: dest is whole or absent."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_write(dest, check=check) as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, start = 0, time.time()
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                rate = done / max(time.time() - start, 1e-6) / 1e6
                of_total = f"/{total / 1e6:.1f} MB ({100 * done / total:.0f}%)" if total else " MB"
                print(f"\rdownloading {url}: {done / 1e6:.1f}{of_total} {rate:.1f} MB/s",
                      end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"cannot download {url} ({err}); with no network, download it elsewhere "
                            f"and put it at {dest}") from None


def replace_block(path, name, text):
    """Replace what stands between the lines '<!-- name: begin -->' and '<!-- name: end -->'
    of a markdown file with `text` (the markers stay): how a generator refreshes its part of
    a hand-written document."""
    path = Path(path)
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    document = path.read_text()
    if document.count(begin) != 1 or document.count(end) != 1 or document.index(begin) > document.index(end):
        raise ValueError(f"{path} needs one line '{begin}' and after it one line '{end}' around the generated "
                         f"block; add them where the block belongs")
    head, rest = document.split(begin)
    tail = rest.split(end)[1]
    with atomic_write(path, "w") as file:
        file.write(f"{head}{begin}\n{text.strip()}\n{end}{tail}")
