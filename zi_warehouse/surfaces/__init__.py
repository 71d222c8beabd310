"""The surfaces family's header and code maps and rules (``parcels.py``, ``*.csv``);
``zi_warehouse/sources/surfaces.py`` is the family's contract."""
