"""Restore the ``collections`` ABC aliases removed in Python 3.10 that Backtrader 1.9.78 still uses.

Imported by ``btlab`` itself, so that ``import btlab`` is enough to mend Backtrader in a notebook even when the
user imports ``backtrader`` directly. The aliases are the very classes of :mod:`collections.abc`.
"""

import collections
import collections.abc

for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable", "Hashable"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
