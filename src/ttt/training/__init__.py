"""Training a TtT model: config, data loading, collation and noising, backbones, checkpoints, the loop, export
and layer growth. Submodules are imported explicitly so that importing the package stays cheap."""
