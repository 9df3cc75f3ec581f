#!/usr/bin/env python3
"""Turns web assets into a C file: one const byte array and length each.

usage: embed.py OUTPUT.c NAME=FILE [NAME=FILE ...]
"""
import sys


def main() -> int:
    out_path, pairs = sys.argv[1], sys.argv[2:]
    lines = ["/* Generated from web/ at build time by web/embed.py. */",
             "#include <stddef.h>", ""]
    for pair in pairs:
        name, path = pair.split("=", 1)
        with open(path, "rb") as f:
            data = f.read()
        lines.append(f"const unsigned char {name}[] = {{")
        for i in range(0, len(data), 16):
            chunk = ", ".join(str(b) for b in data[i:i + 16])
            lines.append(f"    {chunk},")
        lines.append("    0};")
        lines.append(f"const size_t {name}_len = {len(data)};")
        lines.append("")
    with open(out_path, "w", encoding="ascii") as f:
        f.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
