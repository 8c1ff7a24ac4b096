"""Subcommands of the ``tenancy`` command line, one module each.

Each module defines ``NAME``, ``HELP``, ``configure(parser)`` and ``run(args) -> int``;
:mod:`tenancy.commands.main` lists them in ``COMMANDS``.
"""
