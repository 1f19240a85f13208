"""Where frames come from: image files, a camera, a video or a frame folder, and the capture thread."""
