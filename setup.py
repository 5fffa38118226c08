"""vega-toolkit: the Vega v1 GLUE recipe as fairseq plugins.

Install (see README): torch==2.13.0 first, then fairseq-fixed with --no-build-isolation --no-deps,
then `pip install -e .` (or simply `make test` / `make demo`, which do all of it in .venv).
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent


def version():
    # the one version source is vega_toolkit/__init__.py; read, not imported (that would need torch and fairseq)
    text = (here / "vega_toolkit" / "__init__.py").read_text()
    found = re.findall(r'^__version__ = "([^"]+)"$', text, re.M)
    if len(found) != 1:
        raise RuntimeError(f'vega_toolkit/__init__.py: expected one `__version__ = "..."` line, found {len(found)}')
    return found[0]


def requirements(name):
    lines = (here / "requirements" / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="vega-toolkit",
    version=version(),
    description="Vega v1 recipe (disentangled-attention encoder, ternary RTD, SiFT, transductive and "
    "self-calibrated fine-tuning) as fairseq plugins",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["vega_toolkit", "vega_toolkit.*"]),
    include_package_data=True,
    package_data={"vega_toolkit": ["demo/*.txt", "demo/*.tsv", "conf/**/*.yaml"]},
    # torch and fairseq-fixed are deliberately not install_requires: a bare `torch` would pull a multi-GB CUDA
    # build and fairseq-fixed needs --no-build-isolation --no-deps. `pip install -e .` into an environment that
    # already has them (the documented path) works.
    install_requires=requirements("base.txt"),
    extras_require={"test": requirements("test.txt")},
    entry_points={
        "console_scripts": [
            "vega-train = vega_toolkit.cli.train:cli_main",
            "vega-convert = vega_toolkit.cli.convert:cli_main",
            "vega-generate = vega_toolkit.cli.generate:cli_main",
            "vega-glue = vega_toolkit.cli.glue:cli_main",
            "vega-select = vega_toolkit.cli.select:cli_main",
            "vega-preprocess = vega_toolkit.cli.preprocess:cli_main",
            "vega-study = vega_toolkit.cli.study:cli_main",
            "vega-hydra-train = vega_toolkit.cli.hydra_train:cli_main",
            "vega-config-dir = vega_toolkit.cli.config_dir:cli_main",
            "vega-sweep-report = vega_toolkit.cli.sweep_report:cli_main",
            "vega-plan = vega_toolkit.cli.plan:cli_main",
        ]
    },
    classifiers=["Programming Language :: Python :: 3", "License :: OSI Approved :: MIT License"],
)
