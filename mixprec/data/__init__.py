"""Embedded model and data (MNIST ViT, 5,000 real MNIST digits) and loaders for users' data."""

from mixprec.data.loaders import image_folder, tensor_file
from mixprec.data.mnist import mnist
from mixprec.data.mnist_vit import build_mnist_vit, mnist_vit

__all__ = ["build_mnist_vit", "image_folder", "mnist", "mnist_vit", "tensor_file"]
