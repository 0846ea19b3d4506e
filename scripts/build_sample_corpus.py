"""Build the small, real, multi-domain sample corpus used by Distillery's tests and demos.

The corpus is made only from Debian-packaged text already on the machine (man pages,
/usr/share/doc files, /usr/share/common-licenses, fortune cookies, dictd dictionaries).
It deliberately keeps real-world noise (repeated licence texts, boilerplate, exact
duplicates, one-line documents) so the dedup and filter stages have work to do.

Output: Parquet files (zstd) with columns ``id``, ``text``, ``source`` ; the notes on sources and licences go beside the folder, in ``OUT/../SOURCES.md``
(origin packages, versions and licences).  Deterministic: sorted walks and a fixed seed.

Run (as root on Debian bookworm):
    python scripts/build_sample_corpus.py --install-packages --out data/sample
"""
import argparse
import gzip
import hashlib
import os
import random
import re
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from operators.fileio import atomic_path, write_text_atomic

SEED = 1234
MAX_CHARS = 20_000  # longer documents are split into consecutive chunks of at most this size
MAX_CHUNKS_PER_FILE = 2  # keep only the first chunks of very long files (e.g. huge changelogs)
MAX_SHARE = 0.40  # no domain may exceed this share of all documents
CAPS = {"manpages": 1200, "docs": 1200, "licenses": 200, "fortunes": 4000, "dictionary": 3500}
MAN_FILES = 800  # man pages rendered (sampled before rendering, which is the slow part)
APT_PACKAGES = ["man-db", "groff-base", "fortunes", "fortunes-min", "dict-jargon", "dict-devil"]
# Packages installed on this machine from non-Debian vendors; their files are skipped.
THIRD_PARTY = re.compile(r"google|kubernetes|nodesource", re.IGNORECASE)
DOC_NAME = re.compile(r"^(copyright|changelog\.Debian(\.gz)?|(README|NEWS|TODO|AUTHORS)[^/]*)$")
FORTUNE_DIR = Path("/usr/share/games/fortunes")
DICT_DIR = Path("/usr/share/dictd")
SAMPLE_DICTS = ("devil", "jargon")  # the sample reads only these, whatever else is installed
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
NOTES = {
    "manpages": "English man pages (/usr/share/man/man1..man8, sampled), rendered with "
    "`man -l` at MANWIDTH=80, overstrike removed. Licences vary per package (see table).",
    "docs": "Per-package files in /usr/share/doc/PKG: copyright, changelog.Debian.gz, README*, "
    "NEWS*, TODO*, AUTHORS* (gunzipped). Copyright files embed many repeated licence texts.",
    "licenses": "Licence texts in /usr/share/common-licenses (package base-files; symlinks "
    "skipped). The GNU and Artistic texts state that verbatim copying is permitted; Apache-2.0, "
    "BSD, CC0-1.0 and MPL texts are standard licence documents reproduced unmodified.",
    "fortunes": "One document per fortune cookie (files in /usr/share/games/fortunes split on "
    "'%' lines). The copyright file states a BSD licence for fortune-mod; the cookies are "
    "quotations collected from many sources without individual licence statements.",
    "dictionary": "One document per dictd entry of The Jargon File 4.4.7 (dict-jargon, stated "
    "public domain) and The Devil's Dictionary by Ambrose Bierce (dict-devil, public domain, "
    "copyright expired); entries located via the .index base64 offsets.",
}


@dataclass(frozen=True)
class Doc:
    source: str
    origin: str  # file path, plus '#n' for entries inside a file
    chunk: int
    text: str
    package: str

    @property
    def id(self) -> str:
        digest = hashlib.sha1(f"{self.origin}#{self.chunk}".encode()).hexdigest()
        return f"{self.source}-{digest[:12]}"


def install_packages() -> None:
    """apt-get install the Debian packages this script reads, if any is missing."""
    query = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\n", *APT_PACKAGES],
                           capture_output=True, text=True).stdout.splitlines()
    present = {line.split()[0] for line in query if line.endswith(" installed")}
    missing = [p for p in APT_PACKAGES if p not in present]
    if missing:
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(["apt-get", "install", "-y", *missing], check=True)


def installed_packages() -> dict[str, str]:
    """Package -> version for installed packages that come from Debian (not third-party repos)."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Maintainer}\n"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return {p: v for p, v, m in rows if not THIRD_PARTY.search(f"{v} {m}")}


def file_owners() -> dict[str, str]:
    """Installed path -> owning package, from dpkg's file lists."""
    owners: dict[str, str] = {}
    for lst in sorted(Path("/var/lib/dpkg/info").glob("*.list")):
        pkg = lst.stem.split(":")[0]
        for line in lst.read_text(errors="replace").splitlines():
            owners.setdefault(line, pkg)
    return owners


def read_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def file_docs(source: str, path: Path, text: str, package: str) -> list[Doc]:
    """One Doc per chunk of <= MAX_CHARS chars, cut at paragraph/line breaks where possible."""
    pieces: list[str] = []
    while len(text) > MAX_CHARS and len(pieces) < MAX_CHUNKS_PER_FILE:
        breaks = (text.rfind(sep, MAX_CHARS // 2, MAX_CHARS) for sep in ("\n\n", "\n"))
        cut = next((c for c in breaks if c > 0), MAX_CHARS)
        pieces.append(text[:cut])
        text = text[cut:]
    if len(pieces) < MAX_CHUNKS_PER_FILE:
        pieces.append(text)
    return [Doc(source, str(path), i, t, package) for i, t in enumerate(pieces) if t.strip()]


def render_man(path: Path) -> str:
    env = {**os.environ, "MANWIDTH": "80", "LANG": "C.UTF-8", "GROFF_NO_SGR": "1"}
    out = subprocess.run(["man", "-l", str(path)], capture_output=True, env=env).stdout
    return re.sub(r".\x08", "", out.decode("utf-8", errors="replace"))


def manpages(owners: dict[str, str], pkgs: dict[str, str], rng: random.Random) -> list[Doc]:
    files = [p for d in range(1, 9) for p in sorted(Path(f"/usr/share/man/man{d}").iterdir())
             if p.is_file() and not p.is_symlink() and owners.get(str(p)) in pkgs]
    files = sorted(rng.sample(files, min(MAN_FILES, len(files))))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        texts = list(pool.map(render_man, files))
    return [d for p, t in zip(files, texts) for d in file_docs("manpages", p, t, owners[str(p)])]


def docs(pkgs: dict[str, str]) -> list[Doc]:
    out: list[Doc] = []
    for pkg_dir in sorted(Path("/usr/share/doc").iterdir()):
        if pkg_dir.name not in pkgs or pkg_dir.is_symlink() or not pkg_dir.is_dir():
            continue
        for path in sorted(pkg_dir.iterdir()):
            if DOC_NAME.match(path.name) and path.is_file() and not path.is_symlink():
                text = read_text(path)
                if "\x00" not in text:
                    out += file_docs("docs", path, text, pkg_dir.name)
    return out


def licenses(owners: dict[str, str]) -> list[Doc]:
    paths = sorted(p for p in Path("/usr/share/common-licenses").iterdir() if not p.is_symlink())
    return [d for p in paths for d in file_docs("licenses", p, read_text(p), owners[str(p)])]


def fortunes(owners: dict[str, str]) -> list[Doc]:
    out: list[Doc] = []
    for path in sorted(FORTUNE_DIR.iterdir()):
        if path.suffix in {".dat", ".u8"} or path.is_symlink() or not path.is_file():
            continue
        entries = re.split(r"^%\n", read_text(path), flags=re.MULTILINE)
        out += [Doc("fortunes", f"{path}#{i}", 0, e.rstrip("\n"), owners[str(path)])
                for i, e in enumerate(entries) if e.strip()]
    return out


def b64_int(s: str) -> int:
    """Decode a dictd index number (base64 digits, most significant first)."""
    return reduce(lambda value, ch: value * 64 + B64.index(ch), s, 0)


def dictionary(owners: dict[str, str], names: tuple[str, ...] = SAMPLE_DICTS,
               source: str = "dictionary") -> list[Doc]:
    """One Doc per entry of the dictd dictionaries ``names`` (index file stems)."""
    out: list[Doc] = []
    for index in sorted(DICT_DIR / f"{name}.index" for name in names):
        data_path = index.with_suffix(".dict.dz")  # dictzip is gzip-compatible
        data = gzip.decompress(data_path.read_bytes())
        seen: set[int] = set()  # several headwords may point at one entry
        for line in index.read_text(errors="replace").splitlines():
            word, off, length = line.split("\t")[:3]
            start = b64_int(off)
            if word.startswith("00-database") or start in seen:
                continue
            seen.add(start)
            text = data[start:start + b64_int(length)].decode("utf-8", errors="replace")
            out += file_docs(source, Path(f"{data_path}#{start}"), text,
                             owners[str(data_path)])
    return out


def balance(domains: dict[str, list[Doc]], rng: random.Random) -> dict[str, list[Doc]]:
    """Cap each domain (CAPS, then MAX_SHARE of the total) by seeded sampling, keeping order."""
    def cap(docs_: list[Doc], n: int) -> list[Doc]:
        keep = set(rng.sample(range(len(docs_)), n)) if len(docs_) > n else set(range(len(docs_)))
        return [d for i, d in enumerate(docs_) if i in keep]

    domains = {k: cap(v, CAPS[k]) for k, v in domains.items()}
    for name in sorted(domains, key=lambda k: -len(domains[k])):
        others = sum(len(v) for k, v in domains.items() if k != name)
        domains[name] = cap(domains[name], int(MAX_SHARE / (1 - MAX_SHARE) * others))
    return domains


def licence_summary(pkg: str) -> str:
    """Licences named in /usr/share/doc/PKG/copyright (DEP-5 'License:' fields if present)."""
    path = Path("/usr/share/doc", pkg, "copyright")
    if not path.exists():
        return "no copyright file"
    text = path.read_text(errors="replace")
    if text.startswith("Format:"):
        names = sorted({m.strip() for m in re.findall(r"^License:[ \t]*(\S[^\n]*)", text, re.M)})
        return "DEP-5: " + ", ".join(names)
    refs = ", ".join(sorted(set(re.findall(r"common-licenses/([\w.+-]*\w)", text))))
    return f"free-form {path}" + (f"; refers to common-licenses {refs}" if refs else "")


def write_sources(out: Path, domains: dict[str, list[Doc]], pkgs: dict[str, str]) -> None:
    debian = Path("/etc/debian_version").read_text().strip()
    lines = ["# Sample corpus sources", "",
             f"Built by `scripts/build_sample_corpus.py` (seed {SEED}) from Debian {debian} "
             "packages installed on the build machine. Columns: id, text, source.", "",
             f"Files of packages from non-Debian vendors ({THIRD_PARTY.pattern}) are skipped. "
             f"Documents over {MAX_CHARS} chars are split into chunks (first "
             f"{MAX_CHUNKS_PER_FILE} kept); domains are capped by seeded sampling (at most "
             f"{MAX_SHARE:.0%} of documents each). Real noise is kept on purpose: exact "
             "duplicates, repeated licence boilerplate, very short entries, stray overstrike "
             "bytes. Read the data with a `*.parquet` glob (this file lives alongside).", "",
             "| domain | docs | chars |", "|---|---:|---:|"]
    lines += [f"| {k} | {len(v)} | {sum(len(d.text) for d in v)} |" for k, v in domains.items()]
    for name, items in domains.items():
        lines += ["", f"## {name}", "", NOTES[name], "",
                  "| package | version | docs | licences (from /usr/share/doc/PKG/copyright) |",
                  "|---|---|---:|---|"]
        counts = Counter(d.package for d in items)
        lines += [f"| {p} | {pkgs.get(p, '?')} | {n} | {licence_summary(p).replace('|', '/')} |"
                  for p, n in sorted(counts.items())]
    write_text_atomic(out.parent / "SOURCES.md", "\n".join(lines) + "\n")


def write_parquet(out: Path, rows: list[Doc], num_files: int) -> None:
    """Write each part file atomically (operators.fileio), then drop stale parts."""
    names = [f"part-{i:05d}.parquet" for i in range(num_files)]
    for i, name in enumerate(names):
        part = rows[i::num_files]
        table = pa.table({"id": [d.id for d in part], "text": [d.text for d in part],
                          "source": [d.source for d in part]})
        with atomic_path(out / name) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    for stale in set(out.glob("part-*.parquet")) - {out / name for name in names}:
        stale.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/sample"))
    parser.add_argument("--num-files", type=int, default=4, choices=range(1, 5))
    parser.add_argument("--install-packages", action="store_true",
                        help="apt-get install the needed Debian packages when missing")
    args = parser.parse_args()
    if args.install_packages:
        install_packages()
    pkgs, owners = installed_packages(), file_owners()
    rng = random.Random(SEED)
    domains = balance({"manpages": manpages(owners, pkgs, rng), "docs": docs(pkgs),
                       "licenses": licenses(owners), "fortunes": fortunes(owners),
                       "dictionary": dictionary(owners)}, rng)
    rows = sorted((d for v in domains.values() for d in v), key=lambda d: d.id)
    assert len({d.id for d in rows}) == len(rows), "document ids are not unique"
    random.Random(SEED).shuffle(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_parquet(args.out, rows, args.num_files)
    write_sources(args.out, domains, pkgs)
    for name, items in domains.items():
        print(f"{name:<11} docs={len(items):>6} chars={sum(len(d.text) for d in items):>11,}")
    print(f"{'total':<11} docs={len(rows):>6} chars={sum(len(d.text) for d in rows):>11,}")


if __name__ == "__main__":
    main()
