"""Target kinds: one module each, all with the `TargetHandler` shape of `base.py`."""
