"""The trees family's readers and rules; ``zi_warehouse/sources/trees.py`` is the family's contract.

Modules, one responsibility each:
- ``coordinates.py``: coordinate reference systems and the vectorised conversion (pyproj);
- ``geojson.py``: GeoJSON registers into canonical string columns (a columnar and an exact path);
- ``schemas.py``: tree-register schemas, one per sender (data), and a register's canonical columns;
- ``register.py``: tree registers: the municipality of a register, the plausibility rules (inside the
  municipality: ``zi_warehouse/boundaries.py``);
- ``campaign.py``: the campaign distribution lists: header and species maps, the rules;
- ``*.csv``: header and value maps as data (compared after ``reference.normalise_name``):
  ``register_schemas.csv`` and ``register_headers.csv`` (one schema per sender), ``campaign_headers.csv``,
  ``campaign_species.csv``.
"""


class FileProblem(ValueError):
    """A whole-file problem; the message is German and tells the sender what to fix."""

    def __init__(self, message_de: str, rule: str):
        super().__init__(message_de)
        self.rule = rule
