#!/usr/bin/env python3
"""Checks that every ```LANG block of a document is quoted from the samples.

    ffi/samples/check-doc-blocks.py DOC LANG SAMPLE...

The samples are compiled (and run) by the bindings tests; a block that a
document shows must be a run of consecutive lines of one of them, so that
the document never shows code that does not compile. Lines are compared
without their leading and trailing whitespace, so a method may be quoted
out of its class. A document without any ```LANG block fails too: a
misspelt fence would otherwise pass unchecked.
"""

import pathlib
import re
import sys


def blocks(text, lang):
    """The fenced blocks of `lang` in a Markdown text, as lists of lines."""
    found = []
    for match in re.finditer(r"^```" + re.escape(lang) + r"[ \t]*\n(.*?)^```[ \t]*$", text, re.M | re.S):
        found.append(match.group(1).splitlines())
    return found


def normal(lines):
    return [line.strip() for line in lines]


def quoted(block, sample):
    """Whether `block` is a run of consecutive lines of `sample`."""
    block, sample = normal(block), normal(sample)
    while block and not block[-1]:
        block.pop()
    if not block:
        return True
    return any(sample[i:i + len(block)] == block for i in range(len(sample) - len(block) + 1))


def main(argv):
    if len(argv) < 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    doc, lang, samples = pathlib.Path(argv[1]), argv[2], [pathlib.Path(p) for p in argv[3:]]
    found = blocks(doc.read_text(encoding="utf-8"), lang)
    if not found:
        print(f"{doc}: no ```{lang} block to check", file=sys.stderr)
        return 1
    texts = {path: path.read_text(encoding="utf-8").splitlines() for path in samples}
    missing = 0
    for number, block in enumerate(found, 1):
        if not any(quoted(block, lines) for lines in texts.values()):
            missing += 1
            first = next((line for line in block if line.strip()), "")
            print(f"{doc}: ```{lang} block {number} (starting {first.strip()!r}) is not in "
                  f"{', '.join(map(str, samples))}: copy it from there, or change the sample",
                  file=sys.stderr)
    if missing:
        return 1
    print(f"{doc}: all {len(found)} ```{lang} blocks are quoted from the samples")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
