"""``mke-exp``: real-data experiments. The task registry and ``run``/``prepare`` arrive with the
experiment-framework issue; until then the command only reports its version."""

import click


@click.group(context_settings=dict(help_option_names=["-h", "--help"]))
@click.version_option(package_name="mke")
def cli():
    """Multimodal Knowledge Expansion on real data (tasks arrive with the experiment framework)."""


if __name__ == "__main__":
    cli()
