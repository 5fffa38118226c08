"""`vega-config-dir`: print the folder the Hydra configs are installed in (vega_toolkit/conf), so that stock fairseq
finds them without a search through site-packages:

    fairseq-hydra-train --config-dir "$(vega-config-dir)/glue" --config-name sst2 \
        common.user_dir="$(dirname "$(vega-config-dir)")" task.data=glue_data/SST-2 ...
"""
from vega_toolkit.cli.hydra_train import CONF_DIR


def cli_main():
    print(CONF_DIR)


if __name__ == "__main__":
    cli_main()
