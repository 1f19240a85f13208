"""Training: the Siamese encoder (losses, online triplet mining, trainer) and the liveness head. Never imported by the kiosk."""
