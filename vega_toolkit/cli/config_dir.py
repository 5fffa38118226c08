"""`vega-config-dir`: print the folder the Hydra configs are installed in (vega_toolkit/conf), so that stock fairseq
finds them without a search through site-packages:

    fairseq-hydra-train --config-dir "$(vega-config-dir)/glue" --config-name sst2 \
        common.user_dir="$(dirname "$(vega-config-dir)")" task.data=glue_data/SST-2 ...
"""

import argparse

from vega_toolkit.cli.hydra_train import CONF_DIR
from vega_toolkit.errors import console_script


@console_script("vega-config-dir")
def cli_main(argv=None):
    argparse.ArgumentParser(prog="vega-config-dir", description=__doc__.split("\n\n")[0]).parse_args(argv)
    print(CONF_DIR)


if __name__ == "__main__":
    cli_main()
