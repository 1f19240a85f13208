"""The kiosk without Qt: the screen's model, enrollment capture, the admin area's actions, the demo."""
