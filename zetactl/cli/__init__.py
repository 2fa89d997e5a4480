"""The typer CLI: thin commands that parse options, call one core function and map errors to exits."""
