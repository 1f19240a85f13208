"""Training the Siamese encoder: losses, online triplet mining, trainer, calibration."""
