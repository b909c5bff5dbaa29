"""python -m nncompile.frontend.specs [--write FILE]: print the tables of the
language reference rendered from the specs, or rewrite FILE's generated blocks."""
import argparse
import sys

from .docs import markdown_tables, update_doc


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m nncompile.frontend.specs", description=__doc__)
    p.add_argument("--write", metavar="FILE", help="rewrite the generated blocks of FILE (docs/language.md)")
    args = p.parse_args()
    if args.write is None:
        for name, table in markdown_tables().items():
            print(f"<!-- BEGIN GENERATED: {name} -->\n{table}\n<!-- END GENERATED: {name} -->\n")
        return 0
    with open(args.write, encoding="utf-8") as f:
        text = f.read()
    new = update_doc(text)
    if new != text:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(new)
    print(f"{args.write}: {'updated' if new != text else 'up to date'}")
    return 0


sys.exit(main())
