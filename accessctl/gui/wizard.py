"""The enrollment wizard: PIN, who, consent, capture (camera or files), review, save.

Nothing is written before the last page's Finish, and then in one transaction
(:func:`accessctl.identity.matching.save_enrollment`), so cancelling at any step leaves the
gallery as it was. The camera capture is :class:`accessctl.kiosk.enrollment.CaptureSession`
(faces, liveness and quality off the GUI thread); photos are read and encoded on a
background thread too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QImage, QPixmap
from PyQt6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from accessctl.config import Settings
from accessctl.errors import AccessctlError
from accessctl.frames.images import load_image
from accessctl.gui.admin import error_label, sentence
from accessctl.gui.preview import VideoWidget
from accessctl.gui.tasks import Tasks
from accessctl.identity.encoders import load_encoder
from accessctl.identity.matching import (
    EncodedFace,
    enrollment_warnings,
    sample_from_image,
)
from accessctl.kiosk.admin import AdminActions
from accessctl.kiosk.enrollment import POSES, CaptureSession
from accessctl.storage.adminpin import AdminPin
from accessctl.storage.gallery import Gallery, Person
from accessctl.thresholds import match_threshold

PIN_PAGE, DETAILS_PAGE, CONSENT_PAGE, METHOD_PAGE, CAMERA_PAGE, FILES_PAGE, REVIEW_PAGE = range(7)
CONSENT_TEXT = (
    "accessctl will store this person's name, employee id, a 128-number face template per photo and the aligned "
    "150x150 face each template was made from, in this site's gallery (readable by the administrator account "
    "only). They are used only to open this site's doors, and are deleted when the person is removed. "
    "The person must be told this and agree before their face is captured."
)


def chip_pixmap(chip: np.ndarray, side: int = 96) -> QPixmap:
    h, w = chip.shape[:2]
    image = QImage(np.ascontiguousarray(chip).tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(
        side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


class PinPage(QWizardPage):
    def __init__(self, pin: AdminPin) -> None:
        super().__init__()
        self.pin = pin
        self.setTitle("Admin PIN")
        self.setSubTitle("Enrolling a person needs the admin PIN.")
        layout = QVBoxLayout(self)
        self.edit = QLineEdit()
        self.edit.setObjectName("pin")
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        layout.addWidget(self.edit)
        self.error = error_label()
        layout.addWidget(self.error)

    def validatePage(self) -> bool:  # noqa: N802 - Qt's name
        why = self.pin.refusal(self.edit.text())
        self.edit.clear()
        self.error.setText(sentence(why) if why else "")
        return why is None


class DetailsPage(QWizardPage):
    """The employee id and name. Ids already enrolled are read on a worker thread when
    the page opens (the GUI thread never waits on the gallery); should that read not be
    back yet, the save itself refuses an id that is taken, so nothing is lost."""

    def __init__(self, actions: AdminActions, tasks: Tasks) -> None:
        super().__init__()
        self.admin_actions, self.tasks = actions, tasks
        self.known: dict[str, str] | None = None
        self.setTitle("Who is being enrolled?")
        form = QFormLayout(self)
        self.employee_id = QLineEdit()
        self.employee_id.setObjectName("employeeId")
        self.name = QLineEdit()
        self.name.setObjectName("name")
        form.addRow("Employee id", self.employee_id)
        form.addRow("Name", self.name)
        self.error = error_label()
        form.addRow(self.error)
        self.registerField("employee_id*", self.employee_id)
        self.registerField("name*", self.name)

    def initializePage(self) -> None:  # noqa: N802
        self.known = None

        def show(known: dict[str, str]) -> None:
            self.known = known

        self.tasks.run(self.admin_actions.enrolled, show, lambda exc: self.error.setText(str(exc)))

    def validatePage(self) -> bool:  # noqa: N802
        eid = self.employee_id.text().strip()
        if not eid or not self.name.text().strip():
            self.error.setText("Both the employee id and the name are needed")
            return False
        if self.known is not None and eid in self.known:
            self.error.setText(f"{eid} is already enrolled ({self.known[eid]}); remove them in the admin area first")
            return False
        return True


class ConsentPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Consent")
        layout = QVBoxLayout(self)
        text = QLabel(CONSENT_TEXT)
        text.setWordWrap(True)
        layout.addWidget(text)
        self.agree = QCheckBox("The person has been informed and agrees")
        self.agree.setObjectName("consent")
        layout.addWidget(self.agree)
        self.registerField("consent*", self.agree)


class MethodPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("How should the face be captured?")
        layout = QVBoxLayout(self)
        self.camera = QRadioButton("With the camera, guided (recommended: checks liveness and takes three poses)")
        self.camera.setObjectName("useCamera")
        self.files = QRadioButton("From image files (no liveness check: use photos you took yourself)")
        self.files.setObjectName("useFiles")
        self.camera.setChecked(True)
        layout.addWidget(self.camera)
        layout.addWidget(self.files)

    def nextId(self) -> int:  # noqa: N802
        return CAMERA_PAGE if self.camera.isChecked() else FILES_PAGE


class CameraPage(QWizardPage):
    def __init__(self, wizard: "EnrollWizard") -> None:
        super().__init__()
        self.w = wizard
        self.session: CaptureSession | None = None
        self.setTitle("Capture")
        self.setSubTitle(
            "Follow the prompt. Each pose is taken when the face is live, sharp, large enough and turned as asked."
        )
        layout = QHBoxLayout(self)
        left = QVBoxLayout()
        self.video = VideoWidget(mirror=wizard.settings.kiosk.mirror)
        left.addWidget(self.video, 1)
        self.prompt = QLabel("")
        self.prompt.setObjectName("prompt")
        self.prompt.setStyleSheet("font-size: 20px; font-weight: bold")
        left.addWidget(self.prompt)
        self.problems = QLabel("")
        self.problems.setObjectName("problems")
        self.problems.setWordWrap(True)
        left.addWidget(self.problems)
        layout.addLayout(left, 1)
        right = QVBoxLayout()
        self.thumbs: dict[str, QLabel] = {}
        for pose in POSES:
            label = QLabel(f"{pose.name}\n(waiting)")
            label.setFixedSize(110, 120)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet("border: 1px solid #90a4ae")
            self.thumbs[pose.name] = label
            right.addWidget(label)
        again = QPushButton("Start over")
        again.clicked.connect(self.restart)
        right.addWidget(again)
        right.addStretch(1)
        layout.addLayout(right)
        self.timer = QTimer(self)
        self.timer.setInterval(30)
        self.timer.timeout.connect(self._tick)
        self._done = False

    def initializePage(self) -> None:  # noqa: N802
        self.restart()

    def restart(self) -> None:
        self._done = False
        self.w.samples = []
        for pose in POSES:
            self.thumbs[pose.name].setPixmap(QPixmap())
            self.thumbs[pose.name].setText(f"{pose.name}\n(waiting)")
        if self.session is None:
            self.session = CaptureSession(
                self.w.sources, self.w.settings, realtime=self.w.realtime, gallery_path=self.w.gallery_path
            )
        self.session.start()
        self.timer.start()
        self.completeChanged.emit()

    def stop(self) -> None:
        self.timer.stop()
        if self.session is not None:
            self.session.stop()

    def cleanupPage(self) -> None:  # noqa: N802 - going Back
        self.stop()

    def _tick(self) -> None:
        assert self.session is not None
        frame, state, message = self.session.latest()
        faces = state.result.faces if state is not None and state.result is not None else ()
        self.video.show_frame(frame.image if frame is not None else None, faces)
        if state is not None:
            self.prompt.setText(state.prompt)
            lines = ([state.notice] if state.notice else []) + list(state.problems) + ([message] if message else [])
            self.problems.setText("\n".join(lines))
            for source, face in state.captured:
                pose = source.rsplit("(", 1)[-1].rstrip(")")
                if pose in self.thumbs and self.thumbs[pose].pixmap().isNull():
                    self.thumbs[pose].setPixmap(chip_pixmap(face.face.chip))
            if state.done and not self._done:
                self._done = True
                self.w.samples, self.w.method = list(state.captured), "camera"
                self.completeChanged.emit()
        else:
            self.problems.setText(message)
        if self.session.finished:
            self.timer.stop()
            if state is None or not state.done:
                self.problems.setText(message)

    def isComplete(self) -> bool:  # noqa: N802
        return self._done

    def nextId(self) -> int:  # noqa: N802
        return REVIEW_PAGE


class FilesPage(QWizardPage):
    def __init__(self, wizard: "EnrollWizard") -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Photos")
        self.setSubTitle("One good photo is enough: one face, at least 64 pixels, sharp, looking at the camera.")
        layout = QVBoxLayout(self)
        add = QPushButton("Add photos…")
        add.clicked.connect(self._ask_files)
        layout.addWidget(add, alignment=Qt.AlignmentFlag.AlignLeft)
        self.list = QListWidget()
        self.list.setObjectName("files")
        layout.addWidget(self.list)
        self.good: list[tuple[str, EncodedFace]] = []

    def _ask_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Photos of the person", "", "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp *.pgm *.ppm)"
        )
        if paths:
            self.add_files(paths)

    def add_files(self, paths: Sequence[str]) -> None:
        settings = self.w.settings
        gallery_path = self.w.gallery_path

        def work() -> list[tuple[str, EncodedFace | None, str]]:
            with Gallery(gallery_path) as g:
                encoder = load_encoder(g.encoder_id)
            out: list[tuple[str, EncodedFace | None, str]] = []
            for p in paths:
                try:
                    out.append((p, sample_from_image(load_image(p), p, settings, encoder), ""))
                except AccessctlError as exc:
                    out.append((p, None, str(exc)))
            return out

        def show(results: list[tuple[str, EncodedFace | None, str]]) -> None:
            for path, sample, error in results:
                if sample is not None:
                    self.good.append((path, sample))
                    self.list.addItem(f"OK: {path}")
                else:
                    self.list.addItem(f"Not used: {error}")
            self.w.samples, self.w.method = list(self.good), "files"
            self.completeChanged.emit()

        self.list.addItem(f"Reading {len(paths)} photo(s)…")
        self.w.tasks.run(work, show, lambda exc: self.list.addItem(f"Failed: {exc}"))

    def initializePage(self) -> None:  # noqa: N802
        self.w.samples, self.w.method = list(self.good), "files"

    def isComplete(self) -> bool:  # noqa: N802
        return bool(self.good)

    def nextId(self) -> int:  # noqa: N802
        return REVIEW_PAGE


class ReviewPage(QWizardPage):
    def __init__(self, wizard: "EnrollWizard") -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Review")
        self.setSubTitle("Check the faces and the details, then press Finish to save.")
        layout = QVBoxLayout(self)
        self.summary = QLabel("")
        self.summary.setObjectName("summary")
        layout.addWidget(self.summary)
        self.faces = QHBoxLayout()
        layout.addLayout(self.faces)
        self.warnings = QLabel("")
        self.warnings.setObjectName("warnings")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #d46b08")
        layout.addWidget(self.warnings)
        self.confirm = QCheckBox("I have checked the warnings above: enroll anyway")
        self.confirm.setObjectName("confirmWarnings")
        self.confirm.toggled.connect(lambda _: self.completeChanged.emit())
        layout.addWidget(self.confirm)
        self.error = error_label()
        self.error.setObjectName("saveError")
        layout.addWidget(self.error)
        layout.addStretch(1)
        self.checked = False
        self.has_warnings = False

    def initializePage(self) -> None:  # noqa: N802
        w = self.w
        eid, name = str(w.field("employee_id")).strip(), str(w.field("name")).strip()
        self.summary.setText(f"{name} ({eid}): {len(w.samples)} face(s)")
        while self.faces.count():
            item = self.faces.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        for _, face in w.samples:
            thumb = QLabel()
            thumb.setPixmap(chip_pixmap(face.face.chip, 120))
            self.faces.addWidget(thumb)
        self.faces.addStretch(1)
        self.checked, self.has_warnings = False, False
        self.confirm.setChecked(False)
        self.confirm.setVisible(False)
        self.warnings.setText("Checking the gallery for duplicates…")
        samples, settings, gallery_path = list(w.samples), w.settings, w.gallery_path

        def work() -> list[str]:
            with Gallery(gallery_path) as g:
                return enrollment_warnings(g, samples, eid, match_threshold(settings, g.encoder_id))

        def show(warnings: list[str]) -> None:
            self.checked, self.has_warnings = True, bool(warnings)
            self.warnings.setText("\n".join(warnings) if warnings else "No duplicate found in the gallery.")
            self.confirm.setVisible(bool(warnings))
            self.completeChanged.emit()

        w.tasks.run(work, show, lambda exc: self.error.setText(str(exc)))

    def isComplete(self) -> bool:  # noqa: N802
        return self.checked and (not self.has_warnings or self.confirm.isChecked()) and not self.w.saving


class EnrollWizard(QWizard):
    """``enrolled(Person)`` is emitted once the person is saved."""

    enrolled = pyqtSignal(object)

    def __init__(
        self,
        sources: str | Sequence[str],
        settings: Settings,
        pin: AdminPin,
        *,
        realtime: bool = True,
        unlocked: bool = False,
        gallery_path: Path | None = None,
        audit_path: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.sources = [sources] if isinstance(sources, str) else list(sources)
        self.settings, self.realtime = settings, realtime
        self.gallery_path, self.audit_path = gallery_path, audit_path
        self.admin_actions = AdminActions(gallery_path, audit_path, settings.kiosk.name, settings.store.url)
        self.samples: list[tuple[str, EncodedFace]] = []  # what Finish saves, from the camera or the files page
        self.method = ""
        self.saving = False
        self.tasks = Tasks(self)
        self.setWindowTitle("Enroll a person")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage)
        self.resize(900, 640)
        self.camera_page = CameraPage(self)
        self.files_page = FilesPage(self)
        self.review_page = ReviewPage(self)
        for page_id, page in (
            (PIN_PAGE, PinPage(pin)),
            (DETAILS_PAGE, DetailsPage(self.admin_actions, self.tasks)),
            (CONSENT_PAGE, ConsentPage()),
            (METHOD_PAGE, MethodPage()),
            (CAMERA_PAGE, self.camera_page),
            (FILES_PAGE, self.files_page),
            (REVIEW_PAGE, self.review_page),
        ):
            self.setPage(page_id, page)
        self.setStartId(DETAILS_PAGE if unlocked else PIN_PAGE)

    def accept(self) -> None:
        """Finish: save in one transaction; the wizard closes only once it is saved."""
        if self.saving:
            return
        eid, name = str(self.field("employee_id")).strip(), str(self.field("name")).strip()
        samples, method = list(self.samples), self.method

        def saved(person: Person) -> None:
            self.saving = False
            self.enrolled.emit(person)
            super(EnrollWizard, self).accept()

        def failed(exc: Exception) -> None:
            self.saving = False
            self.review_page.error.setText(f"Not saved: {exc}")
            self.review_page.completeChanged.emit()

        self.saving = True
        self.review_page.completeChanged.emit()
        self.tasks.run(lambda: self.admin_actions.enroll(eid, name, samples, method), saved, failed)

    def done(self, result: int) -> None:  # noqa: D102 - Qt's name; any way out stops the camera
        self.camera_page.stop()
        self.tasks.shutdown()
        super().done(result)
