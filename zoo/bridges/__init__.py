"""Bridges to other model libraries (timm, torchvision), registered as model sources."""
