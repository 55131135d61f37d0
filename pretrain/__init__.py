"""Masked-image-modeling pretraining: MAE, ConvMAE and SIM encoders (torch + timm only)."""
