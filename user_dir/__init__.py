"""`fairseq-train --user-dir user_dir ...` entry point.

fairseq imports this directory as the top-level module `user_dir`; importing the installed package registers every
vega component exactly once (the plugin modules themselves live only under the name `vega_toolkit`, so nothing is
registered twice).
"""

import vega_toolkit  # noqa: F401
