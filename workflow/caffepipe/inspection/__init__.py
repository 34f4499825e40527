"""Inspecting trained nets: `caffe time` per-layer timings, filters and feature maps, the Sobel demo."""
