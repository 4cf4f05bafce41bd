"""The post-deployment report: assembled from the ledger, sealed into the package."""
