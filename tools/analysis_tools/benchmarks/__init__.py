"""The subcommands of tools/analysis_tools/benchmark.py, one module each."""
