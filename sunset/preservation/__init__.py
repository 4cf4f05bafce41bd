"""Preservation: the store and its replicas, the BagIt package, snapshot, verification,
fixity, the audit, restore, and the resurrection drill."""
