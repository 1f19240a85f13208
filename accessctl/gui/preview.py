"""The camera preview with a box and a caption over each face."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from accessctl.door.pipeline import FaceState
from accessctl.kiosk.session import Tone, face_caption

BOX_COLOURS = {
    Tone.CHECKING: QColor(245, 176, 0),
    Tone.LIVE: QColor(46, 184, 92),
    Tone.SPOOF: QColor(222, 52, 52),
    Tone.UNKNOWN: QColor(222, 52, 52),
}
TONE_COLOURS = {Tone.GRANTED: "#1b873a", Tone.DENIED: "#c42b1c", Tone.WARNING: "#d46b08", Tone.NEUTRAL: "#263238"}


class VideoWidget(QWidget):
    """Paints an RGB frame scaled to fit (mirrored if asked) and the faces over it.

    Painting wraps the frame's memory in a QImage without copying; the frame arrays
    are never written after capture, so holding a reference is enough."""

    def __init__(self, parent: QWidget | None = None, *, mirror: bool = True) -> None:
        super().__init__(parent)
        self.mirror = mirror
        self._image: np.ndarray | None = None
        self._faces: Sequence[FaceState] = ()
        self._dim = False
        self.frames_shown = 0
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def show_frame(self, image: np.ndarray | None, faces: Sequence[FaceState] = (), *, dim: bool = False) -> None:
        self._image, self._faces, self._dim = image, faces, dim
        self.update()

    def paintEvent(self, event: QPaintEvent | None) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(12, 14, 18))
        image = self._image
        if image is None:
            p.end()
            return
        self.frames_shown += 1
        h, w = image.shape[:2]
        scale = min(self.width() / w, self.height() / h)
        dw, dh = w * scale, h * scale
        ox, oy = (self.width() - dw) / 2, (self.height() - dh) / 2
        # Zero-copy over the frame's own buffer (PyQt6 accepts any buffer; its stubs say bytes).
        qimage = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_RGB888)  # type: ignore[call-overload]
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.save()
        if self.mirror:
            p.translate(ox + dw, oy)
            p.scale(-1, 1)
        else:
            p.translate(ox, oy)
        p.drawImage(QRectF(0, 0, dw, dh), qimage)
        p.restore()
        if self._dim:
            p.fillRect(QRectF(ox, oy, dw, dh), QColor(0, 0, 0, 150))
        font = QFont(self.font())
        font.setPixelSize(max(14, int(dh / 28)))
        font.setBold(True)
        p.setFont(font)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        for face in self._faces:
            x0, y0, x1, y1 = face.box
            if self.mirror:
                x0, x1 = w - x1, w - x0
            rect = QRectF(ox + x0 * scale, oy + y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale)
            text, key = face_caption(face)
            colour = BOX_COLOURS[key]
            p.setPen(QPen(colour, max(3.0, dh / 160)))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRoundedRect(rect, 10, 10)
            metrics = p.fontMetrics()
            tw, th = metrics.horizontalAdvance(text) + 16, metrics.height() + 8
            label = QRectF(rect.left(), max(oy, rect.top() - th - 4), max(tw, 40), th)
            p.fillRect(label, colour)
            p.setPen(QColor("white"))
            p.drawText(label, Qt.AlignmentFlag.AlignCenter, text)
        p.end()
