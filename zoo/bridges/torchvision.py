"""Placeholder: the torchvision bridge is being written."""
