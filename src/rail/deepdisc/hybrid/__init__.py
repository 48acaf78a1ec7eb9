"""Hybrid photo-zs: the image network's PDFs and template fitting's, fused per object."""
