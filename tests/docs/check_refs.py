#!/usr/bin/env python3
"""check_refs: every place in the code that cites a section of the
repository's own documentation (`docs/<page>.md "<Section>"`, also split
over comment lines) names a page and a heading that exist, and nothing
cites documents outside the repository (SPEC, RAFT-NOTES, DESIGN).

Exit 0 when all hold; 1 with one line per broken reference."""
import os
import re
import sys

ROOT = os.environ.get("CHORUS_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCAN = ["src", "tests", "tools", "deploy", "docs", "README.md", "Makefile",
        "CMakeLists.txt"]
EXTS = (".c", ".h", ".py", ".sh", ".md", ".txt", "Makefile")
# A citation: docs/page.md followed by a quoted section; comment
# continuation characters between the words are ignored.
CITE = re.compile(r'docs/([a-z0-9_-]+)\.md(?:[\s*#/]+)?"([^"]+)"')
FOREIGN = re.compile(r'\b(RAFT-NOTES|SPEC §|SPEC\.md|DESIGN ")')


def headings(page):
    path = os.path.join(ROOT, "docs", page + ".md")
    if not os.path.exists(path):
        return None
    out = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#+\s+(.*\S)\s*$", line)
            if m:
                out.add(m.group(1))
    return out


def section_exists(heads, section):
    for h in heads:
        if h == section or h.startswith(section + " ("):
            return True
    return False


def files():
    for top in SCAN:
        p = os.path.join(ROOT, top)
        if os.path.isfile(p):
            yield p
            continue
        for dirpath, dirnames, names in os.walk(p):
            dirnames[:] = [d for d in dirnames if d not in ("corpus",)]
            for n in names:
                if n.endswith(EXTS):
                    yield os.path.join(dirpath, n)


def main():
    bad = []
    n_refs = 0
    cache = {}
    for path in files():
        rel = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        # Join comment continuation lines so a citation may wrap.
        flat = re.sub(r'\n[ \t]*(?:\*|#|//)?[ \t]*', " ", text)
        for m in CITE.finditer(flat):
            page, section = m.group(1), m.group(2)
            section = re.sub(r"\s+", " ", section)
            n_refs += 1
            if page not in cache:
                cache[page] = headings(page)
            heads = cache[page]
            if heads is None:
                bad.append("%s: cites docs/%s.md, which does not exist"
                           % (rel, page))
            elif not section_exists(heads, section):
                bad.append('%s: cites docs/%s.md "%s", no such section'
                           % (rel, page, section))
        if rel.startswith("tests/docs/"):
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if FOREIGN.search(line):
                bad.append("%s:%d: cites a document outside the repository: %s"
                           % (rel, i, line.strip()[:100]))
    for b in bad:
        print(b)
    print("check_refs: %d citations, %d broken" % (n_refs, len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
