"""The whole workflow (prune -> compress -> distill -> test), the demo and the report."""
