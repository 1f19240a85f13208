"""Faces in a frame: detection, landmarks, alignment, quality, and tracks across frames."""
