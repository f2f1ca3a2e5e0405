"""Encoder/decoder MLPs, latent heads (Gaussian, vMF, Power Spherical, deterministic) and the VAE."""

from .heads import HEADS, LatentHead, build_head
from .vae import VAE, build_model

__all__ = ["HEADS", "LatentHead", "build_head", "VAE", "build_model"]
