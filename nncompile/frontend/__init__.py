"""The frontend: `.nn` text -> checked AST (`nncompile.frontend.ast`)."""
from .parser import parse_file, parse_source

__all__ = ["parse_source", "parse_file"]
