"""Placeholder: the timm bridge is being written."""
