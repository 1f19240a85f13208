"""Training: the Siamese encoder (losses, online triplet mining, trainer) and the liveness
CNNs' fine-tuning. Never imported by the kiosk."""
