"""Entry point of ``pulumi up`` in this folder: declares one cell and exports its :class:`CellOutputs` keys."""

import pulumi

from infra.cell.program import define_cell, load_config

for key, value in define_cell(load_config()).items():
    pulumi.export(key, value)
