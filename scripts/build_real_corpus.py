"""Build a real corpus of >= 100,000 distinct documents from Debian-packaged text (benchmarks only).

Reuses ``scripts/build_sample_corpus.py`` (document ids, chunking, man rendering, dictd reading, licence
summaries, Parquet writing) on a larger set of sources: the GCIDE dictionary, WordNet 3.0, FOLDOC and the
Jargon File, every fortune cookie, all Debian-owned English man pages, /usr/share/doc files, the licence
texts and the Python 3.11 documentation sources (reStructuredText, split into sections).  Exact duplicate
texts are dropped (the smallest id of each text is kept), so every document is distinct; each domain is
capped by seeded sampling (CAPS) and no domain may exceed MAX_SHARE of the corpus (checked).

Output (not committed; ``benchmarks/_work`` is gitignored):

    OUT/data/part-*.parquet   columns id, text, source (zstd)
    OUT/SOURCES.md            domain table, and package, version, licence per source package

Deterministic for a given set of installed packages: sorted walks, a fixed seed, no clocks.
Exact command (as root on Debian 12; the packages are installed once, from Debian's archive):

    .venv/bin/python scripts/build_real_corpus.py --install-packages --out benchmarks/_work/real-100k
"""
from __future__ import annotations

import argparse
import hashlib
import random
import re
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_sample_corpus as base  # noqa: E402  (a sibling script, not a package)
from build_sample_corpus import Doc  # noqa: E402

SEED = 20261128
APT_PACKAGES = ["man-db", "groff-base", "fortunes", "fortunes-min", "dict-jargon", "dict-devil",
                "dict-gcide", "dict-wn", "dict-foldoc", "python3-doc"]
DICTS = {"dictionary": ("gcide", "devil"), "wordnet": ("wn",), "computing": ("foldoc", "jargon")}
CAPS = {"dictionary": 42_000, "wordnet": 24_000, "computing": 15_000, "fortunes": 16_000,
        "manpages": 8_000, "python-docs": 10_000, "docs": 4_000, "licenses": 200}
MAX_SHARE = 0.60
PYDOC_DIR = Path("/usr/share/doc/python3.11-doc/html/_sources")
HEADING = re.compile(r"^([=\-~^*#\"+'`:.])\1{2,}\s*$")
NOTES = {
    "dictionary": "One document per dictd entry of GCIDE, the GNU Collaborative International Dictionary "
    "of English 0.48.5 (dict-gcide, GPL-2+; based on Webster's 1913, public domain) and The Devil's "
    "Dictionary by Ambrose Bierce (dict-devil, public domain).",
    "wordnet": "One document per dictd entry of WordNet 3.0 (dict-wn, Princeton WordNet 3.0 licence: "
    "use, copy, modify and distribute for any purpose, BSD-like; a free licence in Debian main).",
    "computing": "One document per dictd entry of FOLDOC, the Free On-line Dictionary of Computing "
    "(dict-foldoc, GFDL 1.1+ with no invariant sections) and The Jargon File 4.4.7 (dict-jargon, public "
    "domain).",
    "fortunes": base.NOTES["fortunes"],
    "manpages": "All English man pages in /usr/share/man/man1..man8 owned by Debian packages (third-party "
    "vendors' pages, e.g. 16,631 gcloud pages, are skipped), rendered with `man -l` at MANWIDTH=80, "
    "overstrike removed. Licences vary per package (see table).",
    "python-docs": "The Python 3.11 documentation sources (python3.11-doc, reStructuredText in "
    "html/_sources), one document per section (split at heading underlines). PSF licence 2 (free).",
    "docs": base.NOTES["docs"],
    "licenses": base.NOTES["licenses"],
}


def manpages(owners: dict[str, str], pkgs: dict[str, str]) -> list[Doc]:
    """Every Debian-owned man page in man1..man8 (no sampling), rendered in parallel."""
    files = [p for d in range(1, 9) for p in sorted(Path(f"/usr/share/man/man{d}").iterdir())
             if p.is_file() and not p.is_symlink() and owners.get(str(p)) in pkgs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = list(pool.map(base.render_man, files))
    return [d for p, t in zip(files, texts) for d in base.file_docs("manpages", p, t, owners[str(p)])]


def rst_sections(text: str) -> list[str]:
    """Split reStructuredText at section titles (a title line followed by an underline)."""
    lines = text.splitlines()
    starts = [0] + [i for i in range(1, len(lines) - 1)
                    if lines[i].strip() and HEADING.match(lines[i + 1])
                    and len(lines[i + 1].strip()) >= len(lines[i].strip())
                    and not HEADING.match(lines[i])]
    starts = sorted(set(starts))
    # an overline belongs to the section it opens
    starts = [s - 1 if s > 0 and HEADING.match(lines[s - 1]) else s for s in starts]
    bounds = zip(starts, starts[1:] + [len(lines)])
    return ["\n".join(lines[a:b]).strip("\n") for a, b in bounds]


def python_docs(owners: dict[str, str]) -> list[Doc]:
    out: list[Doc] = []
    package = owners.get(str(PYDOC_DIR / "contents.rst.txt"), "python3.11-doc")
    for path in sorted(PYDOC_DIR.rglob("*.rst.txt")):
        for i, section in enumerate(rst_sections(base.read_text(path))):
            if section.strip():
                out += base.file_docs("python-docs", Path(f"{path}#{i}"), section, package)
    return out


def distinct(docs_: list[Doc]) -> list[Doc]:
    """Drop exact duplicate texts (compared after stripping), keeping the smallest id of each."""
    seen: set[bytes] = set()
    out = []
    for d in sorted(docs_, key=lambda d: d.id):
        key = hashlib.sha1(d.text.strip().encode()).digest()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def balance(domains: dict[str, list[Doc]], rng: random.Random) -> dict[str, list[Doc]]:
    def cap(items: list[Doc], n: int) -> list[Doc]:
        if len(items) <= n:
            return items
        keep = set(rng.sample(range(len(items)), n))
        return [d for i, d in enumerate(items) if i in keep]
    return {k: cap(v, CAPS[k]) for k, v in domains.items()}


def write_sources(out: Path, domains: dict[str, list[Doc]], pkgs: dict[str, str], found: dict[str, int]) -> None:
    debian = Path("/etc/debian_version").read_text().strip()
    total = sum(len(v) for v in domains.values())
    lines = ["# Real 100k corpus sources", "",
             f"Built by `scripts/build_real_corpus.py` (seed {SEED}) from Debian {debian} packages installed "
             "on the build machine; for benchmarks, not committed. Columns: id, text, source. Data: "
             "`data/*.parquet` beside this file.", "",
             f"Every document's text is distinct (exact duplicates after stripping whitespace at the ends were "
             f"dropped before sampling). Files of non-Debian vendors ({base.THIRD_PARTY.pattern}) are skipped. "
             f"Documents over {base.MAX_CHARS} chars are split into chunks (first {base.MAX_CHUNKS_PER_FILE} "
             f"kept). Domains are capped by seeded sampling; no domain exceeds {MAX_SHARE:.0%}.", "",
             "| domain | distinct docs found | docs kept | share | chars | median chars |",
             "|---|---:|---:|---:|---:|---:|"]
    for k, v in domains.items():
        sizes = sorted(len(d.text) for d in v)
        lines.append(f"| {k} | {found[k]:,} | {len(v):,} | {len(v) / total:.1%} | {sum(sizes):,} | "
                     f"{sizes[len(sizes) // 2] if sizes else 0:,} |")
    lines.append(f"| **total** | {sum(found.values()):,} | {total:,} | 100% | "
                 f"{sum(len(d.text) for v in domains.values() for d in v):,} | |")
    for name, items in domains.items():
        lines += ["", f"## {name}", "", NOTES[name], "",
                  "| package | version | docs | licences (from /usr/share/doc/PKG/copyright) |",
                  "|---|---|---:|---|"]
        counts = Counter(d.package for d in items)
        lines += [f"| {p} | {pkgs.get(p, '?')} | {n} | {base.licence_summary(p).replace('|', '/')} |"
                  for p, n in sorted(counts.items())]
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/_work/real-100k"))
    parser.add_argument("--num-files", type=int, default=8)
    parser.add_argument("--install-packages", action="store_true",
                        help="apt-get install the needed Debian packages when missing")
    args = parser.parse_args()
    if args.install_packages:
        base.APT_PACKAGES = APT_PACKAGES
        base.install_packages()
    pkgs, owners = base.installed_packages(), base.file_owners()
    raw = {**{k: base.dictionary(owners, names, k) for k, names in DICTS.items()},
           "fortunes": base.fortunes(owners), "manpages": manpages(owners, pkgs),
           "python-docs": python_docs(owners), "docs": base.docs(pkgs), "licenses": base.licenses(owners)}
    # distinct across the whole corpus: a text is kept once, in the domain of its smallest id
    kept = {d.id for d in distinct([d for v in raw.values() for d in v])}
    found = {k: len([d for d in v if d.id in kept]) for k, v in raw.items()}
    domains = balance({k: [d for d in v if d.id in kept] for k, v in raw.items()}, random.Random(SEED))
    rows = sorted((d for v in domains.values() for d in v), key=lambda d: d.id)
    assert len({d.id for d in rows}) == len(rows), "document ids are not unique"
    assert max(len(v) for v in domains.values()) <= MAX_SHARE * len(rows), "a domain is over MAX_SHARE"
    random.Random(SEED).shuffle(rows)
    (args.out / "data").mkdir(parents=True, exist_ok=True)
    base.write_parquet(args.out / "data", rows, args.num_files)
    write_sources(args.out, domains, pkgs, found)
    for name, items in domains.items():
        print(f"{name:<12} found={found[name]:>7,} kept={len(items):>7,} "
              f"chars={sum(len(d.text) for d in items):>12,}")
    print(f"{'total':<12} docs={len(rows):>7,} chars={sum(len(d.text) for d in rows):>12,}")


if __name__ == "__main__":
    main()
