"""The built-in architecture families, one module per family; each registers itself through `register_models`."""
