"""The HALCON workflow procedures (HDevelop "Deep Learning / Classification")."""
